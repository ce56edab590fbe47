import { Redis } from 'ioredis';
import type { RedisOptions } from 'ioredis';
import { RedisUrlError } from './errors.js';

/**
 * Environment variables read, in order, when no URL is given.
 *
 * @example
 * ```ts
 * console.log(`set one of ${REDIS_URL_ENV.join(', ')}`);
 * ```
 */
export const REDIS_URL_ENV = ['KILN_REDIS_URL', 'REDIS_URL'] as const;

/**
 * The Redis URL to use: the one given, else `KILN_REDIS_URL`, else `REDIS_URL`. Credentials go in
 * the URL (`redis://:password@host:6379/0`, `rediss://` for TLS) or in the environment, never in a
 * flag of their own, so they stay out of shell history and process lists when taken from the environment.
 *
 * @example
 * ```ts
 * const url = redisUrl(); // process.env.KILN_REDIS_URL
 * ```
 */
export function redisUrl(given?: string, env: NodeJS.ProcessEnv = process.env): string {
  const url = given ?? REDIS_URL_ENV.map((name) => env[name]).find((v) => v !== undefined && v !== '');
  if (!url) throw new RedisUrlError(`no Redis URL: pass --redis URL or set ${REDIS_URL_ENV.join(' or ')}`);
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new RedisUrlError(`the Redis URL does not parse (expected redis://[user:password@]host[:port][/db])`);
  }
  if (parsed.protocol !== 'redis:' && parsed.protocol !== 'rediss:')
    throw new RedisUrlError(`the Redis URL's scheme is ${parsed.protocol} (expected redis: or rediss:)`);
  return url;
}

/**
 * The URL with its user name and password replaced by `***`: what logs and errors may show.
 *
 * @example
 * ```ts
 * redactRedisUrl('redis://app:s3cret@cache:6379/2'); // 'redis://***:***@cache:6379/2'
 * ```
 */
export function redactRedisUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.username) u.username = '***';
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '(a Redis URL that does not parse)';
  }
}

/**
 * Removes every occurrence of the URL's password and the URL itself from a message.
 *
 * @example
 * ```ts
 * redactSecrets('WRONGPASS for s3cret', 'redis://:s3cret@cache:6379'); // 'WRONGPASS for ***'
 * ```
 */
export function redactSecrets(message: string, url: string): string {
  let out = message.split(url).join(redactRedisUrl(url));
  try {
    const { password, username } = new URL(url);
    for (const secret of [password, decodeURIComponent(password), username].filter((s) => s.length >= 3))
      out = out.split(secret).join('***');
  } catch {
    /* an unparsable URL has no parts to hide beyond itself */
  }
  return out;
}

/**
 * A Redis connection for BullMQ (`maxRetriesPerRequest: null`, as its workers require). Connection
 * errors go to `log` with the credentials removed; ioredis would otherwise print them unhandled.
 *
 * @example
 * ```ts
 * const redis = connectRedis(redisUrl(), (line) => console.error(line));
 * await redis.ping();
 * ```
 */
export function connectRedis(url: string, log: (line: string) => void, options: RedisOptions = {}): Redis {
  const redis = new Redis(url, { maxRetriesPerRequest: null, ...options });
  let last = '';
  redis.on('error', (e: Error) => {
    const line = `redis ${redactRedisUrl(url)}: ${redactSecrets(e.message, url)}`;
    if (line !== last) log(line); // a down server repeats the same error on every reconnect
    last = line;
  });
  return redis;
}
