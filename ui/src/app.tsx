import { useEffect, useRef, useState } from 'preact/hooks';
import { setNoticeHandler, setUnauthorizedHandler } from './api.ts';
import { clearToken, readToken } from './session.ts';
import { formatRoute, parseRoute, type Route } from './route.ts';
import { RejectsView } from './views/rejects.tsx';
import { RunView } from './views/run.tsx';
import { RunsView } from './views/runs.tsx';
import { SignIn } from './views/sign-in.tsx';
import { SourceView, SourcesView } from './views/sources.tsx';

const NOTICE_MS = 10_000;

function useRoute(): Route {
  const [route, setRoute] = useState(() => parseRoute(location.hash));
  useEffect(() => {
    const onChange = () => setRoute(parseRoute(location.hash));
    window.addEventListener('hashchange', onChange);
    return () => window.removeEventListener('hashchange', onChange);
  }, []);
  return route;
}

function titleOf(route: Route): string {
  switch (route.view) {
    case 'runs':
      return 'Runs';
    case 'run':
      return `Run ${route.id}`;
    case 'rejects':
      return `Rejected records of run ${route.id}`;
    case 'sources':
      return 'Sources';
    case 'source':
      return `Source ${route.name}`;
    case 'not-found':
      return 'Not found';
  }
}

/** The shell: sign-in until there is a token, then the header, the navigation and the route's view. */
export function App() {
  const [signedIn, setSignedIn] = useState(() => readToken() !== null);
  const [reason, setReason] = useState<string>();
  const [notice, setNotice] = useState('');
  const route = useRoute();
  const main = useRef<HTMLElement>(null);

  useEffect(() => {
    setUnauthorizedHandler((message) => {
      clearToken();
      setReason(message);
      setSignedIn(false);
    });
    let timer: number | undefined;
    setNoticeHandler((message) => {
      setNotice(message);
      window.clearTimeout(timer);
      timer = window.setTimeout(() => setNotice(''), NOTICE_MS);
    });
  }, []);

  useEffect(() => {
    document.title = `${titleOf(route)} · afluente`;
  }, [route]);

  if (!signedIn)
    return (
      <SignIn
        reason={reason}
        onSignedIn={() => {
          setReason(undefined);
          setSignedIn(true);
        }}
      />
    );

  const signOut = () => {
    clearToken();
    setReason(undefined);
    setSignedIn(false);
  };
  const skip = (event: Event) => {
    // A plain #main link would change the route, which lives in the hash.
    event.preventDefault();
    main.current?.focus();
  };
  const section = route.view === 'sources' || route.view === 'source' ? 'sources' : 'runs';
  return (
    <>
      <a class="skip-link" href="#main" onClick={skip}>
        Skip to content
      </a>
      <header class="top">
        <a class="brand" href={formatRoute({ view: 'runs' })}>
          afluente
        </a>
        <nav aria-label="Main">
          <a href={formatRoute({ view: 'runs' })} aria-current={section === 'runs' ? 'page' : undefined}>
            Runs
          </a>
          <a
            href={formatRoute({ view: 'sources' })}
            aria-current={section === 'sources' ? 'page' : undefined}
          >
            Sources
          </a>
        </nav>
        <button type="button" class="sign-out" onClick={signOut}>
          Sign out
        </button>
      </header>
      <p class="global-notice" role="status" aria-live="polite">
        {notice}
      </p>
      <main id="main" ref={main} tabIndex={-1}>
        <View route={route} />
      </main>
    </>
  );
}

function View({ route }: { route: Route }) {
  switch (route.view) {
    case 'runs':
      return (
        <RunsView
          key={`${route.source ?? ''}|${route.status ?? ''}`}
          source={route.source}
          status={route.status}
        />
      );
    case 'run':
      return <RunView key={route.id} id={route.id} />;
    case 'rejects':
      return <RejectsView key={route.id} id={route.id} />;
    case 'sources':
      return <SourcesView />;
    case 'source':
      return <SourceView key={route.name} name={route.name} />;
    case 'not-found':
      return (
        <>
          <h1>Not found</h1>
          <p>
            Nothing lives at <code>{route.path}</code>.{' '}
            <a href={formatRoute({ view: 'runs' })}>See the runs</a>.
          </p>
        </>
      );
  }
}
