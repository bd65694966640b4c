// The API token, kept in sessionStorage only: it lasts while the tab does, is never written to localStorage, a
// URL or a log, and "Sign out" removes it.

const KEY = 'afluente.token';

export function readToken(): string | null {
  return sessionStorage.getItem(KEY);
}

export function saveToken(token: string): void {
  sessionStorage.setItem(KEY, token);
}

export function clearToken(): void {
  sessionStorage.removeItem(KEY);
}
