import { useState } from 'preact/hooks';
import { api } from '../api.ts';
import { Dialog } from '../components/dialog.tsx';
import { Problem } from '../components/error-box.tsx';
import { formatRoute } from '../route.ts';
import { ENGINES, REPLAY_STAGES, isActive, type Engine, type ReplayStage, type RunDetail } from '../types.ts';

type Action = 'cancel' | 'retry' | 'replay';

/** Cancel, retry and replay, each in a dialog that shows the API's message when the call fails. */
export function RunActions({ run, onDone }: { run: RunDetail; onDone: (message: string) => void }) {
  const [open, setOpen] = useState<Action | null>(null);
  const [error, setError] = useState<string>();
  const [busy, setBusy] = useState(false);
  const [reason, setReason] = useState('');
  const [engine, setEngine] = useState<Engine | ''>('');
  const [acceptKeyChange, setAcceptKeyChange] = useState(false);
  const stages = REPLAY_STAGES.filter((s) => run.plan.includes(s));
  const [stage, setStage] = useState<ReplayStage>(stages[0] ?? 'validate');

  const show = (action: Action) => {
    setError(undefined);
    setReason('');
    setEngine('');
    setAcceptKeyChange(false);
    setOpen(action);
  };
  const act = async (call: () => Promise<string>) => {
    setBusy(true);
    setError(undefined);
    try {
      const message = await call();
      setOpen(null);
      onDone(message);
    } catch (e) {
      setError((e as Error).message);
    } finally {
      setBusy(false);
    }
  };
  const engineField = (
    <label>
      Engine
      <select name="engine" value={engine} onChange={(e) => setEngine(e.currentTarget.value as Engine | '')}>
        <option value="">As configured</option>
        {ENGINES.map((e) => (
          <option key={e} value={e}>
            {e}
          </option>
        ))}
      </select>
    </label>
  );

  return (
    <div class="actions" role="group" aria-label="Run actions">
      {isActive(run.status) ? (
        <button type="button" class="danger" onClick={() => show('cancel')}>
          Cancel run
        </button>
      ) : null}
      {run.status === 'FAILED' ? (
        <button type="button" class="primary" onClick={() => show('retry')}>
          Retry
        </button>
      ) : null}
      {!isActive(run.status) && stages.length > 0 ? (
        <button type="button" onClick={() => show('replay')}>
          Replay from a stage
        </button>
      ) : null}

      <Dialog title={`Cancel run ${run.id}?`} open={open === 'cancel'} onClose={() => setOpen(null)}>
        <form
          onSubmit={(e) => {
            e.preventDefault();
            void act(async () => {
              await api.cancel(run.id, reason.trim() || undefined);
              return `Run ${run.id} cancelled.`;
            });
          }}
        >
          <p>Queued stages are removed and a running stage is told to stop. This cannot be undone.</p>
          <label>
            Reason (optional)
            <input
              name="reason"
              maxLength={500}
              value={reason}
              onInput={(e) => setReason(e.currentTarget.value)}
            />
          </label>
          <Problem error={error} />
          <div class="dialog-buttons">
            <button type="submit" class="danger" disabled={busy}>
              Cancel run
            </button>
            <button type="button" onClick={() => setOpen(null)}>
              Keep it running
            </button>
          </div>
        </form>
      </Dialog>

      <Dialog title={`Retry run ${run.id}`} open={open === 'retry'} onClose={() => setOpen(null)}>
        <form
          onSubmit={(e) => {
            e.preventDefault();
            void act(async () => {
              const retried = await api.retry(run.id, {
                ...(engine ? { engine } : {}),
                ...(acceptKeyChange ? { acceptKeyChange } : {}),
              });
              return `Run ${run.id} retried: attempt ${retried.attempt}.`;
            });
          }}
        >
          <p>
            The failed stage{run.error?.stage ? ` (${run.error.stage})` : ''} runs again as attempt{' '}
            {run.attempt + 1}, on the files the earlier stages committed.
          </p>
          {engineField}
          {run.error?.reason === 'key_changed' ? (
            <label class="check-label">
              <input
                type="checkbox"
                name="acceptKeyChange"
                checked={acceptKeyChange}
                onChange={(e) => setAcceptKeyChange(e.currentTarget.checked)}
              />
              Accept the key change (the warehouse tables were rebuilt)
            </label>
          ) : null}
          <Problem error={error} />
          <div class="dialog-buttons">
            <button type="submit" class="primary" disabled={busy}>
              Retry run
            </button>
            <button type="button" onClick={() => setOpen(null)}>
              Close
            </button>
          </div>
        </form>
      </Dialog>

      <Dialog title={`Replay run ${run.id}`} open={open === 'replay'} onClose={() => setOpen(null)}>
        <form
          onSubmit={(e) => {
            e.preventDefault();
            void act(async () => {
              const replay = await api.replay(run.source, run.id, stage, engine || undefined);
              location.hash = formatRoute({ view: 'run', id: replay.id });
              return `Run ${replay.id} replays run ${run.id} from ${stage}.`;
            });
          }}
        >
          <p>
            A new run of {run.source} starts at the chosen stage on the lake files this run committed, without
            calling the source API.
          </p>
          <label>
            From stage
            <select
              name="stage"
              value={stage}
              onChange={(e) => setStage(e.currentTarget.value as ReplayStage)}
            >
              {stages.map((s) => (
                <option key={s} value={s}>
                  {s}
                </option>
              ))}
            </select>
          </label>
          {engineField}
          <Problem error={error} />
          <div class="dialog-buttons">
            <button type="submit" class="primary" disabled={busy}>
              Start replay
            </button>
            <button type="button" onClick={() => setOpen(null)}>
              Close
            </button>
          </div>
        </form>
      </Dialog>
    </div>
  );
}
