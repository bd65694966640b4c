import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import { BlockList, isIP } from 'node:net';

/** A request the guard refused. Never retryable: the URL comes from config, and config won't change by retrying. */
export class BlockedAddressError extends Error {
  override name = 'BlockedAddressError';
}

// Instance metadata endpoints hand out cloud credentials; nothing a source config says can open them.
const ALWAYS_BLOCKED = new BlockList();
ALWAYS_BLOCKED.addAddress('169.254.169.254', 'ipv4');
ALWAYS_BLOCKED.addAddress('169.254.170.2', 'ipv4');
ALWAYS_BLOCKED.addAddress('fd00:ec2::254', 'ipv6');
ALWAYS_BLOCKED.addSubnet('169.254.0.0', 16, 'ipv4'); // link-local, where metadata services live
ALWAYS_BLOCKED.addSubnet('fe80::', 10, 'ipv6');
ALWAYS_BLOCKED.addSubnet('0.0.0.0', 8, 'ipv4');
ALWAYS_BLOCKED.addSubnet('224.0.0.0', 4, 'ipv4'); // multicast
ALWAYS_BLOCKED.addSubnet('ff00::', 8, 'ipv6');

// Loopback and private ranges: allowed only for a source that says `allowPrivateNetwork: true`.
const PRIVATE = new BlockList();
PRIVATE.addSubnet('127.0.0.0', 8, 'ipv4');
PRIVATE.addSubnet('10.0.0.0', 8, 'ipv4');
PRIVATE.addSubnet('172.16.0.0', 12, 'ipv4');
PRIVATE.addSubnet('192.168.0.0', 16, 'ipv4');
PRIVATE.addSubnet('100.64.0.0', 10, 'ipv4');
PRIVATE.addAddress('::1', 'ipv6');
PRIVATE.addAddress('::', 'ipv6');
PRIVATE.addSubnet('fc00::', 7, 'ipv6');

function family(address: string): 'ipv4' | 'ipv6' {
  return isIP(address) === 6 ? 'ipv6' : 'ipv4';
}

/** IPv4-mapped IPv6 (::ffff:10.0.0.1) is checked as the IPv4 address it maps to. */
function unmap(address: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  return mapped?.[1] ?? address;
}

/** Throws if `address` (an IP) may not be reached under this policy. */
export function checkAddress(address: string, allowPrivateNetwork: boolean, host = address): void {
  const ip = unmap(address);
  if (ALWAYS_BLOCKED.check(ip, family(ip))) {
    throw new BlockedAddressError(
      `refusing to connect to ${host} (${ip}): link-local and cloud metadata addresses are never allowed`,
    );
  }
  if (!allowPrivateNetwork && PRIVATE.check(ip, family(ip))) {
    throw new BlockedAddressError(
      `refusing to connect to ${host} (${ip}): loopback and private addresses need "allowPrivateNetwork: true" on the source`,
    );
  }
}

/** Throws unless `url` is http(s) and, when its host is an IP literal, that IP is allowed. */
export function checkUrl(url: URL, allowPrivateNetwork: boolean): void {
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new BlockedAddressError(`refusing ${url.protocol}// URLs: only http and https are allowed`);
  }
  const host = url.hostname.replace(/^\[|\]$/g, '');
  if (isIP(host)) checkAddress(host, allowPrivateNetwork, url.hostname);
}

type LookupCallback = (
  error: NodeJS.ErrnoException | null,
  address: string | LookupAddress[],
  family?: number,
) => void;

/**
 * A `dns.lookup` replacement for the HTTP client's sockets: it resolves the name and checks every address it
 * would connect to. Checking at connect time, not before the request, closes the DNS-rebinding gap where a
 * name resolves to a public address for the check and a private one for the connection.
 */
export function guardedLookup(allowPrivateNetwork: boolean) {
  return (hostname: string, options: object, callback: LookupCallback): void => {
    dnsLookup(hostname, { ...options, all: true }, (error, addresses) => {
      if (error) return callback(error, []);
      try {
        for (const a of addresses) checkAddress(a.address, allowPrivateNetwork, hostname);
      } catch (blocked) {
        return callback(blocked as NodeJS.ErrnoException, []);
      }
      const all = (options as { all?: boolean }).all;
      if (all) return callback(null, addresses);
      const first = addresses[0];
      if (!first)
        return callback(Object.assign(new Error(`no address for ${hostname}`), { code: 'ENOTFOUND' }), []);
      return callback(null, first.address, first.family);
    });
  };
}
