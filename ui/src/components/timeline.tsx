import { formatDuration, formatTime } from '../format.ts';
import { layoutTimeline } from '../timeline.ts';
import type { Job } from '../types.ts';

/**
 * The run's stages on a time axis: one row per job (every attempt of the run), a light segment for its wait in
 * the queue and a bar for its work. A list underneath, so the numbers read without the picture.
 */
export function Timeline({ jobs, now }: { jobs: Job[]; now: number }) {
  const timeline = layoutTimeline(jobs, now);
  if (timeline.bars.length === 0) return <p>No stage has been queued yet.</p>;
  const attempts = new Set(jobs.map((j) => j.runAttempt)).size;
  return (
    <div class="timeline" data-testid="timeline">
      <ol class="timeline-rows">
        {timeline.bars.map((bar) => {
          const { job } = bar;
          const label =
            `${job.stage}${attempts > 1 ? ` (run attempt ${job.runAttempt})` : ''}: ${job.status}, ` +
            `${formatDuration(bar.durationMs)}, attempt ${job.attempt} of ${job.maxAttempts}`;
          return (
            <li class="timeline-row" key={job.id}>
              <span class="timeline-label">
                {job.stage}
                {attempts > 1 ? <span class="muted"> #{job.runAttempt}</span> : null}
                {job.attempt > 1 ? <span class="attempts"> ×{job.attempt}</span> : null}
              </span>
              <span class="timeline-track">
                {timeline.ticks.map((tick) => (
                  <span key={tick.offsetMs} class="timeline-grid" style={{ left: `${tick.left}%` }} />
                ))}
                {bar.waitWidth > 0 ? (
                  <span
                    class="timeline-wait"
                    style={{ left: `${bar.waitLeft}%`, width: `${bar.waitWidth}%` }}
                    aria-hidden="true"
                  />
                ) : null}
                <span
                  class={`timeline-bar status-${job.status.toLowerCase()}${bar.open ? ' open' : ''}`}
                  style={{ left: `${bar.left}%`, width: `${bar.width}%` }}
                  data-testid="timeline-bar"
                  data-stage={job.stage}
                  data-status={job.status}
                  data-run-attempt={job.runAttempt}
                  role="img"
                  aria-label={label}
                  title={label}
                />
              </span>
            </li>
          );
        })}
      </ol>
      <div class="timeline-axis" aria-hidden="true">
        {timeline.ticks.map((tick) => (
          <span key={tick.offsetMs} style={{ left: `${tick.left}%` }}>
            +{formatDuration(tick.offsetMs)}
          </span>
        ))}
      </div>
      <p class="muted small">Axis from {formatTime(new Date(timeline.start).toISOString())}.</p>
    </div>
  );
}
