/**
 * The `rel="next"` target of an RFC 8288 Link header, resolved against the request URL. Hand-written because
 * only this one relation is needed and the npm parsers pull in more than they save.
 */
export function nextLink(header: string | string[] | undefined, base: URL): URL | undefined {
  const values = Array.isArray(header) ? header : header ? [header] : [];
  for (const value of values) {
    for (const match of value.matchAll(/<([^>]*)>((?:\s*;\s*[^;,]+)*)/g)) {
      const params = match[2] ?? '';
      const rel = /;\s*rel\s*=\s*"?([^";]+)"?/i.exec(params)?.[1];
      if (rel?.toLowerCase().split(/\s+/).includes('next')) return new URL(match[1] ?? '', base);
    }
  }
  return undefined;
}
