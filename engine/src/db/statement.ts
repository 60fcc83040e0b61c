import { createHash } from "node:crypto";

/**
 * A hot-path statement. With a name, each connection prepares it once and
 * PostgreSQL may reuse its plan: planning the completion statement alone took
 * about 1.2 ms per batch. Without one (\`preparedStatements: false\`, for a
 * transaction-mode pooler that cannot keep prepared statements) it is parsed
 * and planned every time.
 */
export interface Statement {
  readonly text: string;
  readonly name?: string;
}

/** PostgreSQL keeps NAMEDATALEN - 1 bytes of a prepared statement's name: longer ones would be cut, and could collide. */
export const MAX_PREPARED_NAME_BYTES = 63;
/** Room for a statement (and its variant) in a name, so that it is never the part that is cut. */
const MAX_STATEMENT_BYTES = 32;

/**
 * The prepared name of \`statement\` (its variant included, e.g.
 * \`complete_traced\`) in \`schema\`: \`weft_<statement>/<schema>\`, readable in
 * pg_prepared_statements. One that would pass 63 bytes keeps the start of the
 * schema and a hash of all of it, so names stay unique per schema and
 * statement. In SQL (EXECUTE, DEALLOCATE) a name is quoted as an identifier.
 */
export function preparedName(statement: string, schema: string): string {
  if (!/^[a-z_]+$/.test(statement) || statement.length > MAX_STATEMENT_BYTES) {
    throw new Error(`statement name ${JSON.stringify(statement)}: 1-${MAX_STATEMENT_BYTES} of [a-z_]`);
  }
  const name = `weft_${statement}/${schema}`;
  if (Buffer.byteLength(name) <= MAX_PREPARED_NAME_BYTES) return name;
  const hash = createHash("sha256").update(schema).digest("hex").slice(0, 8);
  const head = `weft_${statement}/`;
  let kept = schema.slice(0, MAX_PREPARED_NAME_BYTES - head.length - hash.length - 1);
  // Cut by characters, then drop whole characters until the bytes fit (a schema is ASCII when validated).
  while (Buffer.byteLength(`${head}${kept}~${hash}`) > MAX_PREPARED_NAME_BYTES) kept = kept.slice(0, -1);
  return `${head}${kept}~${hash}`;
}

/**
 * The statements of one Store, by name (see preparedName): prepared under it,
 * or plain text when \`prepare\` is false. A name given twice must come with
 * the same text: a variant missing from a name would otherwise meet its other
 * text on a connection that prepared the first (pg refuses that).
 */
export class Statements {
  private readonly byName = new Map<string, Statement>();

  /** \`schema\`: unquoted, as validated by quoteSchema; the schema part of the names. */
  constructor(
    private readonly prepare: boolean,
    readonly schema = "",
  ) {}

  get(name: string, text: string): Statement {
    const known = this.byName.get(name);
    if (known) {
      if (known.text !== text) throw new Error(`two texts for the prepared statement ${name}`);
      return known;
    }
    const stmt: Statement = this.prepare ? { text, name } : { text };
    this.byName.set(name, stmt);
    return stmt;
  }
}
