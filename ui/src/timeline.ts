import { STAGES, type Job } from './types.ts';

// Lays a run's jobs out on one time axis: a bar per job from its start to its end (to now while it runs), and
// before it the time it waited in its queue. Every attempt of the run has its own bars. Pure: positions are
// percentages of the axis, so the view only draws them.

export interface TimelineBar {
  job: Job;
  /** Where its wait in the queue starts, and how long it is, in % of the axis. */
  waitLeft: number;
  waitWidth: number;
  /** Where its work starts, and how long it is, in % of the axis (0 wide before it started). */
  left: number;
  width: number;
  /** Its duration so far, in ms (null before it started). */
  durationMs: number | null;
  /** Still running: the bar grows with `now`. */
  open: boolean;
}

export interface Timeline {
  start: number;
  end: number;
  bars: TimelineBar[];
  ticks: { left: number; offsetMs: number }[];
}

const TICK_STEPS = [
  0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400,
].map((s) => s * 1000);
const MAX_TICKS = 6;
/** A finished job of a few ms still shows as a sliver. */
const MIN_WIDTH = 0.4;

export function layoutTimeline(jobs: readonly Job[], now: number): Timeline {
  const ordered = [...jobs].sort(
    (a, b) => a.runAttempt - b.runAttempt || STAGES.indexOf(a.stage) - STAGES.indexOf(b.stage) || a.id - b.id,
  );
  const spans = ordered.map((job) => {
    const created = Date.parse(job.createdAt);
    const started = job.startedAt ? Date.parse(job.startedAt) : null;
    const open = job.status === 'RUNNING' && !job.finishedAt;
    const finished = job.finishedAt ? Date.parse(job.finishedAt) : open ? now : started;
    // A job cancelled or failed before it started ends its wait when it finished.
    const waitEnd = started ?? (job.finishedAt ? Date.parse(job.finishedAt) : now);
    return { job, created, started, finished, waitEnd, open };
  });
  if (spans.length === 0) return { start: now, end: now, bars: [], ticks: [] };
  const start = Math.min(...spans.map((s) => s.created));
  const end = Math.max(start + 100, ...spans.map((s) => Math.max(s.finished ?? s.waitEnd, s.waitEnd)));
  const span = end - start;
  const pct = (t: number) => ((t - start) / span) * 100;
  const bars = spans.map(({ job, created, started, finished, waitEnd, open }) => {
    const left = pct(started ?? waitEnd);
    const width = started === null || finished === null ? 0 : Math.max(MIN_WIDTH, pct(finished) - left);
    return {
      job,
      waitLeft: pct(created),
      waitWidth: Math.max(0, pct(waitEnd) - pct(created)),
      left: Math.min(left, 100 - width),
      width,
      durationMs: started === null || finished === null ? null : finished - started,
      open,
    };
  });
  const step = TICK_STEPS.find((s) => span / s <= MAX_TICKS) ?? Math.ceil(span / MAX_TICKS);
  const ticks = [];
  for (let offset = 0; offset <= span; offset += step)
    ticks.push({ left: pct(start + offset), offsetMs: offset });
  return { start, end, bars, ticks };
}
