import { createHash, timingSafeEqual } from "node:crypto";
import { ConfigError } from "@weft/engine";

/** What a token may do: `read` the GET endpoints, `write` everything. */
export type TokenScope = "read" | "write";

/** A bearer token: the token itself, or (better, in configuration files) its SHA-256 digest in hex. */
export interface HttpToken {
  readonly token?: string;
  readonly sha256?: string;
  readonly scope: TokenScope;
}

interface StoredToken {
  readonly digest: Buffer;
  readonly scope: TokenScope;
}

const HEX_DIGEST = /^[0-9a-f]{64}$/i;

function sha256(value: string): Buffer {
  return createHash("sha256").update(value, "utf8").digest();
}

/**
 * The configured tokens, kept only as SHA-256 digests. A presented token is
 * hashed and compared with every digest with timingSafeEqual (digests all have
 * the same length, and every one is compared), so neither the comparison nor
 * the number of tokens tried leaks how much of a token matched.
 */
export class TokenSet {
  private readonly tokens: readonly StoredToken[];

  constructor(tokens: readonly HttpToken[]) {
    this.tokens = tokens.map((t, i) => {
      const where = `tokens[${i}]`;
      if (typeof t !== "object" || t === null) throw new ConfigError(where, "expected { token | sha256, scope }");
      if (t.scope !== "read" && t.scope !== "write")
        throw new ConfigError(`${where}.scope`, 'expected "read" or "write"');
      if ((t.token === undefined) === (t.sha256 === undefined)) {
        throw new ConfigError(where, "give exactly one of token and sha256");
      }
      if (t.token !== undefined) {
        if (typeof t.token !== "string" || t.token.length < 16) {
          throw new ConfigError(`${where}.token`, "expected a string of at least 16 characters");
        }
        return { digest: sha256(t.token), scope: t.scope };
      }
      if (typeof t.sha256 !== "string" || !HEX_DIGEST.test(t.sha256)) {
        throw new ConfigError(`${where}.sha256`, "expected the token's SHA-256 digest: 64 hexadecimal characters");
      }
      return { digest: Buffer.from(t.sha256, "hex"), scope: t.scope };
    });
  }

  get size(): number {
    return this.tokens.length;
  }

  /** The scope of `presented`, or null when it matches no token. */
  scopeOf(presented: string): TokenScope | null {
    const digest = sha256(presented);
    let scope: TokenScope | null = null;
    for (const t of this.tokens) {
      if (timingSafeEqual(digest, t.digest) && (scope === null || t.scope === "write")) scope = t.scope;
    }
    return scope;
  }
}

/** The token of an `Authorization: Bearer <token>` header, or null. */
export function bearerToken(header: string | undefined): string | null {
  if (header === undefined) return null;
  const match = /^Bearer[ ]+([\x21-\x7e]{1,4096})[ ]*$/i.exec(header);
  return match?.[1] ?? null;
}
