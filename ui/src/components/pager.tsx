import { useState } from 'preact/hooks';

/**
 * Keyset paging over an API list (`nextCursor` passed back as `cursor`): the cursors of the pages walked so far,
 * so "back" needs no cursor of its own from the API.
 */
export function useCursorPages() {
  const [cursors, setCursors] = useState<(string | undefined)[]>([undefined]);
  return {
    /** The cursor of the page on show; undefined on the first page. */
    cursor: cursors[cursors.length - 1],
    /** How many pages precede the one on show. */
    depth: cursors.length - 1,
    back: () => setCursors((c) => (c.length > 1 ? c.slice(0, -1) : c)),
    forward: (next: string) => setCursors((c) => [...c, next]),
    reset: () => setCursors([undefined]),
  };
}

/** The back and forward buttons of a paged list; forward is off when the API gave no `nextCursor`. */
export function Pager({
  label,
  pages,
  nextCursor,
  backText,
  forwardText,
}: {
  label: string;
  pages: ReturnType<typeof useCursorPages>;
  nextCursor: string | null | undefined;
  backText: string;
  forwardText: string;
}) {
  return (
    <nav class="pager" aria-label={label}>
      <button type="button" disabled={pages.depth === 0} onClick={pages.back}>
        {backText}
      </button>
      <button
        type="button"
        disabled={!nextCursor}
        onClick={() => {
          if (nextCursor) pages.forward(nextCursor);
        }}
      >
        {forwardText}
      </button>
    </nav>
  );
}
