import { useState } from 'preact/hooks';
import { api } from '../api.ts';
import { Problem } from '../components/error-box.tsx';
import { saveToken } from '../session.ts';

/**
 * Asks for an API token (one of AFLUENTE_API_TOKENS), checks it against the API and keeps it in
 * sessionStorage. `reason` is why the user is here again: the server's 401 message.
 */
export function SignIn({ reason, onSignedIn }: { reason?: string; onSignedIn: () => void }) {
  const [token, setToken] = useState('');
  const [error, setError] = useState<string | undefined>(reason);
  const [busy, setBusy] = useState(false);
  const submit = async (event: Event) => {
    event.preventDefault();
    const value = token.trim();
    if (!value) {
      setError('Enter an API token.');
      return;
    }
    setBusy(true);
    setError(undefined);
    try {
      await api.sources(undefined, value);
      saveToken(value);
      setToken('');
      onSignedIn();
    } catch (e) {
      setError((e as Error).message);
    } finally {
      setBusy(false);
    }
  };
  return (
    <main id="main" class="sign-in" tabIndex={-1}>
      <h1>Sign in to afluente</h1>
      <form onSubmit={(e) => void submit(e)} class="card">
        <p>
          Paste an API token (one of the service's <code>AFLUENTE_API_TOKENS</code>). It is kept in this tab's
          session storage only, and sent only to this service's API.
        </p>
        <label for="token">API token</label>
        <input
          id="token"
          name="token"
          type="password"
          autoComplete="off"
          spellcheck={false}
          value={token}
          onInput={(e) => setToken(e.currentTarget.value)}
          required
          aria-describedby={error ? 'sign-in-problem' : undefined}
        />
        <div id="sign-in-problem">
          <Problem error={error} />
        </div>
        <button type="submit" class="primary" disabled={busy}>
          {busy ? 'Signing in…' : 'Sign in'}
        </button>
      </form>
    </main>
  );
}
