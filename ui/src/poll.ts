import { useEffect, useRef, useState } from 'preact/hooks';

export interface Polled<T> {
  data: T | undefined;
  error: Error | undefined;
  /** Loads again now (after an action), keeping the data shown meanwhile. */
  reload: () => void;
}

/** Polls after an error, so a view recovers once the API answers again. */
const ERROR_INTERVAL_MS = 10_000;

/**
 * Loads `load` now and again every `every(data)` ms (null: not again), while the tab is visible: a hidden tab
 * stops polling and loads once when shown again. A change of `key` starts over; leaving the view aborts the
 * request in flight.
 */
export function usePolled<T>(
  key: string,
  load: (signal: AbortSignal) => Promise<T>,
  every: (data: T) => number | null,
): Polled<T> {
  const [state, setState] = useState<{ key: string; data?: T; error?: Error }>({ key });
  const [nonce, setNonce] = useState(0);
  const loadRef = useRef(load);
  const everyRef = useRef(every);
  loadRef.current = load;
  everyRef.current = every;

  useEffect(() => {
    const controller = new AbortController();
    let timer: number | undefined;
    let due = false;
    const schedule = (ms: number | null) => {
      if (ms === null || controller.signal.aborted) return;
      timer = window.setTimeout(() => {
        if (document.hidden) due = true;
        else void tick();
      }, ms);
    };
    const tick = async () => {
      try {
        const data = await loadRef.current(controller.signal);
        if (controller.signal.aborted) return;
        setState({ key, data });
        schedule(everyRef.current(data));
      } catch (error) {
        if (controller.signal.aborted) return;
        setState((s) => ({ key, data: s.key === key ? s.data : undefined, error: error as Error }));
        schedule(ERROR_INTERVAL_MS);
      }
    };
    const onVisibility = () => {
      if (!document.hidden && due) {
        due = false;
        void tick();
      }
    };
    document.addEventListener('visibilitychange', onVisibility);
    void tick();
    return () => {
      controller.abort();
      window.clearTimeout(timer);
      document.removeEventListener('visibilitychange', onVisibility);
    };
  }, [key, nonce]);

  const current = state.key === key ? state : { key };
  return { data: current.data, error: current.error, reload: () => setNonce((n) => n + 1) };
}

/** The current time, ticking every `ms` while `active`, for durations that grow. */
export function useNow(active: boolean, ms = 1000): number {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    if (!active) return;
    const timer = window.setInterval(() => setNow(Date.now()), ms);
    return () => window.clearInterval(timer);
  }, [active, ms]);
  return active ? now : Date.now();
}
