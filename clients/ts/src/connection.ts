/**
 * How a client reaches the gateway: the address as a URL, the TLS settings of Node's
 * HTTP/2 session (certificates read from files or given as PEM), and the caller key
 * sent as `authorization: Bearer <key>` on every call.
 */

import { readFileSync } from "node:fs";
import type { SecureClientSessionOptions } from "node:http2";

import type { Interceptor } from "@connectrpc/connect";

/** The environment variable read when the client is given no `apiKey`. */
export const API_KEY_ENV = "PORTICO_API_KEY";

/**
 * TLS settings. Leave the CA out to verify the gateway against the system's trusted
 * authorities (Node's bundle plus `NODE_EXTRA_CA_CERTS`). A client certificate and its
 * key, for mutual TLS, come together.
 */
export interface TlsOptions {
  /** PEM file of the authority (or authorities) that signed the gateway's certificate. */
  readonly caFile?: string;
  /** PEM file of the client certificate, for mutual TLS. */
  readonly certFile?: string;
  /** PEM file of the client certificate's private key. */
  readonly keyFile?: string;
  /** The CA as PEM text or bytes, instead of `caFile`. */
  readonly ca?: string | Buffer;
  /** The client certificate as PEM, instead of `certFile`. */
  readonly cert?: string | Buffer;
  /** The client certificate's key as PEM, instead of `keyFile`. */
  readonly key?: string | Buffer;
  /** The name to verify the gateway's certificate against, when it differs from the address's host. */
  readonly serverName?: string;
}

/** Node's session options for `tls` (`true`: TLS with the system's CAs). */
export function tlsSessionOptions(tls: boolean | TlsOptions | undefined): SecureClientSessionOptions {
  if (typeof tls !== "object") {
    return {};
  }
  const options: SecureClientSessionOptions = {};
  const ca = pem(tls.ca, tls.caFile, "ca");
  const cert = pem(tls.cert, tls.certFile, "cert");
  const key = pem(tls.key, tls.keyFile, "key");
  if ((cert === undefined) !== (key === undefined)) {
    throw new TypeError("PorticoClient: tls needs a client certificate and its key together (certFile and keyFile)");
  }
  if (ca !== undefined) options.ca = ca;
  if (cert !== undefined) options.cert = cert;
  if (key !== undefined) options.key = key;
  if (tls.serverName !== undefined) options.servername = tls.serverName;
  return options;
}

function pem(value: string | Buffer | undefined, file: string | undefined, name: string): string | Buffer | undefined {
  if (file === undefined) {
    return value;
  }
  if (value !== undefined) {
    throw new TypeError(`PorticoClient: tls.${name} and tls.${name}File are both set; give one`);
  }
  try {
    return readFileSync(file);
  } catch (error) {
    // The code and the path only: the message of a read error holds nothing secret, but
    // keep it short and the same on every platform.
    const code = (error as NodeJS.ErrnoException).code ?? "error";
    throw new TypeError(`PorticoClient: tls.${name}File: cannot read ${file} (${code})`, { cause: error });
  }
}

/**
 * The caller key to send: `apiKey` when given (an empty string sends none), else
 * $PORTICO_API_KEY, else none.
 */
export function resolveApiKey(apiKey: string | undefined): string | undefined {
  const key = apiKey ?? process.env[API_KEY_ENV];
  if (key === undefined || key === "") {
    return undefined;
  }
  // Checked here so that Node's own error, which quotes the header value, never shows the key.
  if (!/^[\x21-\x7e]+$/.test(key)) {
    throw new TypeError(
      `PorticoClient: the API key (apiKey or ${API_KEY_ENV}) may hold only visible ASCII characters, no spaces or line breaks`,
    );
  }
  return key;
}

/**
 * Adds `authorization: Bearer <key>` to every request of the transport, the raw client's
 * included, unless the call sets its own `authorization`. The key lives only in this
 * closure, so logging the client object never prints it.
 */
export function bearerToken(key: string): Interceptor {
  const value = `Bearer ${key}`;
  return (next) => (request) => {
    if (!request.header.has("authorization")) {
      request.header.set("authorization", value);
    }
    return next(request);
  };
}

/** The gateway's base URL for "host:port" or an http(s):// address; https means TLS. */
export function baseUrlOf(address: string, tls: boolean): string {
  if (/^https?:\/\//.test(address)) {
    if (tls && address.startsWith("http://")) {
      throw new TypeError(`PorticoClient: tls is set but the address is ${address}`);
    }
    return address;
  }
  return `${tls ? "https" : "http"}://${address}`;
}
