// CosineSchedule: the learning rate of step s (0-based) with linear warm-up and cosine decay (llm.c's get_lr).
namespace RouteKit;

/// <summary>
/// Linear warm-up to <see cref="MaxLearningRate"/> over <see cref="WarmupSteps"/> steps, then cosine decay to
/// <see cref="MinLearningRate"/> at <see cref="TotalSteps"/>, and the minimum after that. A pure function of the step.
/// </summary>
public sealed class CosineSchedule
{
    /// <summary>Creates the schedule.</summary>
    /// <exception cref="ArgumentException">A rate is negative or not finite, the minimum exceeds the maximum, warm-up is
    /// negative, or total steps do not exceed the warm-up.</exception>
    public CosineSchedule(double maxLearningRate, double minLearningRate, int warmupSteps, int totalSteps)
    {
        if (!(double.IsFinite(maxLearningRate) && maxLearningRate >= 0))
            throw new ArgumentException($"maxLearningRate is {maxLearningRate}; wanted a finite value >= 0.", nameof(maxLearningRate));
        if (!(double.IsFinite(minLearningRate) && minLearningRate >= 0 && minLearningRate <= maxLearningRate))
            throw new ArgumentException($"minLearningRate is {minLearningRate}; wanted a finite value in [0, {maxLearningRate}].", nameof(minLearningRate));
        if (warmupSteps < 0) throw new ArgumentException($"warmupSteps is {warmupSteps}; wanted >= 0.", nameof(warmupSteps));
        if (totalSteps <= warmupSteps)
            throw new ArgumentException($"totalSteps is {totalSteps}; wanted more than warmupSteps ({warmupSteps}).", nameof(totalSteps));
        (MaxLearningRate, MinLearningRate, WarmupSteps, TotalSteps) = (maxLearningRate, minLearningRate, warmupSteps, totalSteps);
    }

    /// <summary>The peak rate, reached at the last warm-up step.</summary>
    public double MaxLearningRate { get; }
    /// <summary>The final rate, from <see cref="TotalSteps"/> on.</summary>
    public double MinLearningRate { get; }
    /// <summary>Steps of linear warm-up.</summary>
    public int WarmupSteps { get; }
    /// <summary>The step at which the decay reaches <see cref="MinLearningRate"/>.</summary>
    public int TotalSteps { get; }

    /// <summary>
    /// The rate of 0-based step <paramref name="step"/>: max (s + 1) / warmup during warm-up (so step 0 already moves),
    /// then min + (max - min) (1 + cos(pi r)) / 2 with r = (s - warmup) / (total - warmup), and min from total on.
    /// </summary>
    /// <exception cref="ArgumentException">step is negative.</exception>
    public double LearningRate(int step)
    {
        if (step < 0) throw new ArgumentException($"step is {step}; steps count from 0.", nameof(step));
        if (step < WarmupSteps) return MaxLearningRate * (step + 1) / WarmupSteps;
        if (step >= TotalSteps) return MinLearningRate;
        var ratio = (double)(step - WarmupSteps) / (TotalSteps - WarmupSteps);
        return MinLearningRate + (MaxLearningRate - MinLearningRate) * 0.5 * (1 + Math.Cos(Math.PI * ratio));
    }
}
