/** The value at a dot path (`result.items`, `customer.address.city`); `.` or an empty path is the value itself. */
export function getPath(value: unknown, path: string | undefined): unknown {
  if (!path || path === '.') return value;
  let current = value;
  for (const segment of path.split('.')) {
    if (current === null || typeof current !== 'object') return undefined;
    current = (current as Record<string, unknown>)[segment];
  }
  return current;
}
