import type { Auth } from '../../contract/source-config.ts';
import { HandlerError } from '../common/errors.ts';

export interface AuthParts {
  headers: Record<string, string>;
  query: Record<string, string>;
  /** Query parameter names whose values must never appear in a message. */
  secretParams: string[];
}

/**
 * Builds the request credentials from the environment variables the source config names. The values live only
 * in this object and the outgoing request; errors name the variable, never its value.
 */
export function resolveAuth(source: string, auth: Auth, env: NodeJS.ProcessEnv = process.env): AuthParts {
  const read = (name: string, field: string): string => {
    const value = env[name];
    if (!value) {
      throw new HandlerError({
        reason: 'missing_secret',
        message: `source "${source}": environment variable ${name} (auth.${field}) is not set`,
        retryable: false,
      });
    }
    return value;
  };
  switch (auth.kind) {
    case 'none':
      return { headers: {}, query: {}, secretParams: [] };
    case 'bearer':
      return {
        headers: { authorization: `Bearer ${read(auth.tokenEnv, 'tokenEnv')}` },
        query: {},
        secretParams: [],
      };
    case 'apiKey': {
      const value = read(auth.valueEnv, 'valueEnv');
      return auth.in === 'header'
        ? { headers: { [auth.name.toLowerCase()]: value }, query: {}, secretParams: [] }
        : { headers: {}, query: { [auth.name]: value }, secretParams: [auth.name] };
    }
    case 'basic': {
      const credentials = `${read(auth.usernameEnv, 'usernameEnv')}:${read(auth.passwordEnv, 'passwordEnv')}`;
      return {
        headers: { authorization: `Basic ${Buffer.from(credentials).toString('base64')}` },
        query: {},
        secretParams: [],
      };
    }
  }
}
