// `--auth`: how the sampled API is authenticated, as the source's `auth` will say it. The flag names
// environment variables only, so a secret never lands in shell history, `ps`, or the printed proposal.
import { ENV_NAME_PATTERN, type Auth } from '../../contract/source-config.ts';
import { AUTH_FORMS } from './command.ts';

const ENV_NAME = new RegExp(ENV_NAME_PATTERN);

/** A bad `--auth`; its message never repeats the flag's value, which may be a secret pasted by mistake. */
export class AuthSpecError extends Error {}

function envName(value: string | undefined, what: string): string {
  if (value === undefined || !ENV_NAME.test(value)) {
    throw new AuthSpecError(
      `--auth: ${what} must be the NAME of an environment variable (A-Z, 0-9 and _, such as MY_API_TOKEN), ` +
        'not the secret itself',
    );
  }
  return value;
}

/** Reads `--auth` into the source config's `auth`. */
export function parseAuthSpec(text: string): Auth {
  const [kind = '', ...rest] = text.split(':');
  const shape = (n: number): void => {
    if (rest.length !== n)
      throw new AuthSpecError(`--auth ${kind}: expected ${AUTH_FORMS.find((f) => f.startsWith(`${kind}:`))}`);
  };
  switch (kind) {
    case 'none':
      shape(0);
      return { kind: 'none' };
    case 'bearer':
      shape(1);
      return { kind: 'bearer', tokenEnv: envName(rest[0], 'the token') };
    case 'apiKey': {
      if (rest.length !== 3 || (rest[0] !== 'header' && rest[0] !== 'query'))
        throw new AuthSpecError(
          '--auth apiKey: expected apiKey:header:<Header-Name>:KEY_ENV or apiKey:query:<param>:KEY_ENV',
        );
      const [location, name = ''] = rest;
      if (name === '') throw new AuthSpecError(`--auth apiKey:${location}: the ${location} name is empty`);
      return { kind: 'apiKey', in: location, name, valueEnv: envName(rest[2], 'the key') };
    }
    case 'basic':
      shape(2);
      return {
        kind: 'basic',
        usernameEnv: envName(rest[0], 'the user name'),
        passwordEnv: envName(rest[1], 'the password'),
      };
    default:
      throw new AuthSpecError(`--auth must be one of: ${AUTH_FORMS.join(', ')}`);
  }
}
