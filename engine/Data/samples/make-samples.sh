#!/bin/sh
# Rebuilds the committed data samples from Debian packages (run from this folder, after
#   apt-get install -y fortunes fortunes-min dataset-fashion-mnist).
# gzip -n leaves out the name and time stamp, so the same input gives the same bytes.
set -eu
fortunes=/usr/share/games/fortunes
fashion=/usr/share/datasets/fashion-mnist

# Text: English prose and quotations from the "fortunes" package, files concatenated in this order, in the package's own
# format (documents separated by lines holding only "%"). Left out: art and ascii-art (pictures, not prose); ethnic,
# politics and men-women (the files most likely to offend); cookie, songs-poems, knghtbrd, zippy, debian and
# translate-me to keep the sample near 650 kB (all 43 files gzip to 1.06 MB). The offensive set ("off/", package fortunes-off) is
# never read.
files="computers definitions disclaimer drugs education food fortunes goedel humorists kids law linux linuxcookie
literature love magic medicine miscellaneous news paradoxum people perl pets platitudes pratchett riddles science
sports startrek tao wisdom work"
# A "%" line after each file: five files (computers, law, people, pratchett, wisdom) do not end with one, and without it
# their last document would run into the next file's first.
(cd "$fortunes" && for f in $files; do cat "$f"; echo %; done) | gzip -9 -n > fortunes.txt.gz

# Images: the first 2000 images and labels of Fashion-MNIST's test set (t10k), with the IDX headers' counts rewritten
# to 2000. 2000 rather than 10000 keeps the GPU bundle (perf/gpu/bundle.sh) under its 40 MB limit.
n=2000
# The count as 4 big-endian bytes, written as octal escapes (POSIX printf has no \x).
count=$(printf '%08x\n' $n | sed 's/../& /g' | { read -r a b c d; printf '\\%o\\%o\\%o\\%o' 0x$a 0x$b 0x$c 0x$d; })
{ printf '\000\000\010\003'; printf "$count"; printf '\000\000\000\034\000\000\000\034';
  gzip -dc "$fashion/t10k-images-idx3-ubyte.gz" | tail -c +17 | head -c $((n * 784)); } | gzip -9 -n > fashion-mnist-t10k-2000-images-idx3-ubyte.gz
{ printf '\000\000\010\001'; printf "$count";
  gzip -dc "$fashion/t10k-labels-idx1-ubyte.gz" | tail -c +9 | head -c $n; } | gzip -9 -n > fashion-mnist-t10k-2000-labels-idx1-ubyte.gz
ls -l fortunes.txt.gz fashion-mnist-t10k-2000-*.gz
