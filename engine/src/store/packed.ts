import type { AssignedTaskRow, Candidate, NewTaskRow } from "./types.js";

/**
 * Rows packed in one text, as the hot statements exchange them: fields
 * separated by FIELD, rows by ROW, an empty field for NULL. Each format is one
 * field list below, which writes both the SQL that packs (or unpacks) the rows
 * and the client's decoder (or encoder); a field's position is its place in
 * the list. No packed field can hold a separator: ids are ULIDs, task names
 * validated identifiers, numbers digits, and the JSON fields (inputs, saved
 * state, affinity keys sent JSON-encoded) escape every control character.
 */
export const FIELD = "\x1f";
export const ROW = "\x1e";

/** A separator as an SQL escape-string literal, written from the constant itself. */
function sqlChar(c: string): string {
  return `E'\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}'`;
}
export const FIELD_SQL = sqlChar(FIELD);
export const ROW_SQL = sqlChar(ROW);

/** The integer written in \`text\` from \`from\` to \`to\` (an optional minus, then digits), read in place. */
export function digits(text: string, from: number, to: number): number {
  let i = from;
  const negative = text.charCodeAt(i) === 45;
  if (negative) i++;
  let n = 0;
  for (; i < to; i++) n = n * 10 + (text.charCodeAt(i) - 48);
  return negative ? -n : n;
}

/**
 * How a field packed by SQL is written there (around its expression) and read
 * back: \`text\` as it is; \`optText\` empty for NULL; \`ownId\` empty when it
 * equals the row's first field (a workflow id that is the task's own: a
 * quarter less to build, send and split); \`int\` digits; \`json\` JSON text;
 * \`optJson\` JSON text or empty for NULL; \`jsonString\` / \`optJsonString\` a
 * text JSON-encoded (so that it escapes every control character); \`flag\` the
 * expression is a condition, 't' or empty.
 */
type Kind = "text" | "optText" | "ownId" | "int" | "json" | "optJson" | "jsonString" | "optJsonString" | "flag";

interface SqlField {
  /** The property of the decoded row. */
  readonly name: string;
  readonly kind: Kind;
  /** The SQL expression (a condition for a flag). */
  readonly sql: string;
  /** The columns it reads, for a RETURNING list (default: \`sql\`). */
  readonly columns?: readonly string[];
  /** Packed only by the traced variant. */
  readonly traced?: boolean;
}

/** \`id\`: the SQL of the row's first field (see ownId). */
function packSql(f: SqlField, id: string): string {
  switch (f.kind) {
    case "text":
    case "int":
      return f.sql;
    case "optText":
      return `coalesce(${f.sql}, '')`;
    case "ownId":
      return `coalesce(nullif(${f.sql}, ${id}), '')`;
    case "json":
      return `${f.sql}::text`;
    case "optJson":
      return `coalesce(${f.sql}::text, '')`;
    case "jsonString":
      return `to_json(${f.sql})::text`;
    case "optJsonString":
      return `coalesce(to_json(${f.sql})::text, '')`;
    case "flag":
      return `CASE WHEN ${f.sql} THEN 't' ELSE '' END`;
  }
}

/** The JS expression that reads a field from \`t\` between \`a\` and \`b\` (\`id\`: the row's first field). */
function decodeJs(kind: Kind): string {
  switch (kind) {
    case "text":
      return "t.slice(a, b)";
    case "optText":
      return "a === b ? null : t.slice(a, b)";
    case "ownId":
      return "a === b ? id : t.slice(a, b)";
    case "int":
      return "digits(t, a, b)";
    case "json":
    case "jsonString":
      return "JSON.parse(t.slice(a, b))";
    case "optJson":
    case "optJsonString":
      return "a === b ? null : JSON.parse(t.slice(a, b))";
    case "flag":
      return "b > a";
  }
}

/** A field a row does not carry (another variant's, an absent tail) reads as this. */
const absentJs = (kind: Kind): string => (kind === "flag" ? "false" : kind === "ownId" ? "id" : "null");

/**
 * A format packed by SQL and decoded here. \`tail\`: fields packed only where
 * \`tail.unless\` is false, after the others (the row is shorter otherwise).
 */
interface SqlFormat {
  readonly fields: readonly SqlField[];
  readonly tail?: { readonly unless: string; readonly fields: readonly SqlField[] };
}

/** One row's SQL text expression. The first field is the row's id (see ownId). */
function rowSql(format: SqlFormat, traced: boolean): string {
  const fields = format.fields.filter((f) => traced || !f.traced);
  const id = fields[0]?.sql as string;
  const pack = (f: SqlField) => packSql(f, id);
  let sql = fields.map(pack).join(` || ${FIELD_SQL} || `);
  if (format.tail) {
    sql += ` || CASE WHEN ${format.tail.unless} THEN '' ELSE ${FIELD_SQL} || ${format.tail.fields
      .map(pack)
      .join(` || ${FIELD_SQL} || `)} END`;
  }
  return sql;
}

/**
 * The decoder of a format, generated once from its field list, so that it is
 * the straight-line scan a hand-written one was (a loop over the fields, with
 * a function per kind, cost 1.2 to 3 times as much for 2,000 fetched rows).
 * The first field is read as text (the row's id). It scans field by field,
 * not split: splitting made an array and a string per field, a third of what
 * a busy worker allocated per task. Empty fields (most of them) and numbers
 * allocate nothing; every row is one object literal (one shape).
 */
function decoder<R>(format: SqlFormat, traced: boolean): (text: string | null) => R[] {
  const tail = format.tail?.fields ?? [];
  const fields = [...format.fields, ...tail];
  const present = fields.filter((f) => traced || !f.traced);
  const body: string[] = [];
  present.forEach((f, i) => {
    let end: string;
    if (tail.length > 0) end = "b = t.indexOf(FIELD, at); if (b === -1 || b > rowEnd) b = rowEnd;";
    else if (i === present.length - 1) end = "b = t.indexOf(ROW, at); if (b === -1) b = end;";
    else end = "b = t.indexOf(FIELD, at);";
    const read = `a = at; ${end} v${i} = ${i === 0 ? "t.slice(a, b)" : decodeJs(f.kind)}; at = b + 1;`;
    body.push(tail.includes(f) ? `let v${i} = null; if (at <= rowEnd) { ${read} }` : `let v${i}; ${read}`);
    if (i === 0) body.push("const id = v0;");
  });
  const row = fields
    .map((f) => `${JSON.stringify(f.name)}: ${present.includes(f) ? `v${present.indexOf(f)}` : absentJs(f.kind)}`)
    .join(", ");
  const source = `return (t) => {
    if (t === null || t === "") return [];
    const rows = [];
    const end = t.length;
    let at = 0, a = 0, b = 0;
    while (at < end) {
      ${tail.length > 0 ? "let rowEnd = t.indexOf(ROW, at); if (rowEnd === -1) rowEnd = end;" : ""}
      ${body.join("\n      ")}
      ${tail.length > 0 ? "at = rowEnd + 1;" : ""}
      rows.push({ ${row} });
    }
    return rows;
  };`;
  return new Function("digits", "FIELD", "ROW", source)(digits, FIELD, ROW) as (text: string | null) => R[];
}

// ---- Assignments, as a fetch returns them and an apply hands them over ------

/**
 * Tokens are bigint; packed as digits they are exact below 2^53. The trace
 * fields (migration 011) only for a node that traces: two fields more per
 * row to build and send otherwise.
 */
const ASSIGNED: SqlFormat = {
  fields: [
    { name: "id", kind: "text", sql: "id" },
    { name: "workflow_id", kind: "ownId", sql: "workflow_id" },
    { name: "parent_id", kind: "optText", sql: "parent_id" },
    { name: "task_name", kind: "text", sql: "task_name" },
    { name: "input", kind: "json", sql: "input" },
    { name: "attempt", kind: "int", sql: "attempt" },
    { name: "token", kind: "int", sql: "token" },
    { name: "priority", kind: "int", sql: "priority" },
    { name: "affinity_group", kind: "optJsonString", sql: "affinity_group" },
    { name: "affinity", kind: "optJsonString", sql: "affinity" },
    { name: "is_join", kind: "flag", sql: "join_pending IS NOT NULL", columns: ["join_pending"] },
    { name: "saved_state", kind: "optJson", sql: "saved_state" },
    { name: "trace_context", kind: "optText", sql: "trace_context", traced: true },
    { name: "attempt_span", kind: "optText", sql: "attempt_span", traced: true },
    { name: "awaited", kind: "flag", sql: "awaited_by IS NOT NULL", columns: ["awaited_by"], traced: true },
  ],
};

/**
 * The assignments of a relation with the task columns, as one text (an
 * aggregate, in token order). PostgreSQL concatenates text in about half the
 * time it takes to build the same rows as JSON arrays (json_build_array looks
 * up every argument's type on every call: 3.4 against 2.0 ms for 2,000 rows),
 * and splitting it costs the worker no more than one JSON.parse of the batch
 * did; decoding the same rows as protocol rows, field by field, cost the
 * worker 2.5 times as much.
 */
export function packedAssignedSql(traced: boolean): string {
  return `string_agg(${rowSql(ASSIGNED, traced)}, ${ROW_SQL} ORDER BY token)`;
}

/** The columns packedAssignedSql reads, and the node, for an apply's RETURNING list. */
export function packedAssignedColumns(traced: boolean): string {
  const columnsOf = (fields: readonly SqlField[]) => fields.flatMap((f) => f.columns ?? [f.sql]);
  const traceColumns = traced ? columnsOf(ASSIGNED.fields.filter((f) => f.traced)) : [];
  return [...columnsOf(ASSIGNED.fields.filter((f) => !f.traced)), "assigned_node", ...traceColumns]
    .map((c) => `t.${c}`)
    .join(", ");
}

const assignedDecoders = [decoder<AssignedTaskRow>(ASSIGNED, false), decoder<AssignedTaskRow>(ASSIGNED, true)];
/** The rows of packedAssignedSql's text. */
export function decodeAssigned(text: string | null, traced: boolean): AssignedTaskRow[] {
  return (assignedDecoders[traced ? 1 : 0] as (text: string | null) => AssignedTaskRow[])(text);
}

// ---- Candidates, as the planner reads them ----------------------------------

/**
 * Over the relation \`r\` of candidates. A candidate without a key is five
 * fields; one with a key has its group and key and the key's holder after
 * them (empty: nobody holds it). A JSON array per row cost the server a type
 * lookup per value and the planner an array per row.
 */
function candidatesFormat(holderSql: string): SqlFormat {
  return {
    fields: [
      { name: "id", kind: "text", sql: "r.id" },
      { name: "task_name", kind: "text", sql: "r.task_name" },
      { name: "priority", kind: "int", sql: "r.priority" },
      { name: "delayed", kind: "flag", sql: "r.delayed" },
      { name: "workflow_id", kind: "ownId", sql: "r.workflow_id" },
    ],
    tail: {
      unless: "r.affinity IS NULL",
      fields: [
        { name: "affinity_group", kind: "jsonString", sql: "r.affinity_group" },
        { name: "affinity", kind: "jsonString", sql: "r.affinity" },
        { name: "holder", kind: "optText", sql: holderSql },
      ],
    },
  };
}

/** The candidates of relation \`r\` as one text; \`holderSql\`: the holder of r's key (NULL: nobody). */
export function packedCandidatesSql(holderSql: string): string {
  return `string_agg(${rowSql(candidatesFormat(holderSql), false)}, ${ROW_SQL})`;
}

const candidatesDecoder = decoder<Candidate>(candidatesFormat(""), false);
/** The rows of packedCandidatesSql's text. */
export function decodeCandidates(text: string | null): Candidate[] {
  return candidatesDecoder(text);
}

// ---- New tasks, packed here and split by the statement that inserts them ----

interface ClientField {
  readonly column: string;
  /** The field's text (empty: NULL). */
  readonly encode: (r: NewTaskRow) => string;
  /** The column's SQL from the field \`f\` (text, NULL when empty). */
  readonly sql: (f: string) => string;
  /** Last field only: left out with its separator when empty (a row without it reads NULL). */
  readonly omitEmpty?: boolean;
}

const json = (f: string) => `${f}::jsonb`;
const jsonText = (f: string) => `${f}::jsonb #>> '{}'`;
const asIs = (f: string) => f;

/**
 * Splitting text is the cheapest way in for PostgreSQL: for 10,000 children
 * it took ~23 ms where one JSON document (jsonb_to_recordset) took ~80 ms,
 * most of it parsing the jsonb, and 13 array parameters cost the driver ~70 ms
 * to encode. \`input\` is JSON text already; affinity keys are sent JSON-encoded.
 */
const NEW_TASKS: readonly ClientField[] = [
  { column: "id", encode: (r) => r.id, sql: asIs },
  { column: "workflow_id", encode: (r) => r.workflowId, sql: asIs },
  { column: "parent_id", encode: (r) => r.parentId ?? "", sql: asIs },
  { column: "task_name", encode: (r) => r.taskName, sql: asIs },
  { column: "input", encode: (r) => r.input, sql: json },
  { column: "priority", encode: (r) => `${r.priority}`, sql: (f) => `${f}::int` },
  {
    column: "run_after",
    encode: (r) => (r.runAfter === null ? "" : r.runAfter.toISOString()),
    sql: (f) => `${f}::timestamptz`,
  },
  {
    column: "affinity_group",
    encode: (r) => (r.affinityGroup === null ? "" : JSON.stringify(r.affinityGroup)),
    sql: jsonText,
  },
  { column: "affinity", encode: (r) => (r.affinity === null ? "" : JSON.stringify(r.affinity)), sql: jsonText },
  { column: "delay_ms", encode: (r) => `${r.delayMs ?? ""}`, sql: (f) => `${f}::float8` },
  {
    column: "own_joins",
    encode: (r) => (r.ownJoins && r.ownJoins.length > 0 ? r.ownJoins.join(",") : ""),
    sql: asIs,
  },
  { column: "is_fork", encode: (r) => (r.isFork ? "t" : ""), sql: (f) => `${f}::bool` },
  { column: "join_pending", encode: (r) => `${r.joinPending ?? ""}`, sql: (f) => `${f}::int` },
  // Last, and only when there is one: an untraced schedule sends nothing more.
  { column: "trace_context", encode: (r) => r.traceContext ?? "", sql: asIs, omitEmpty: true },
];

/**
 * The encoder of a client-packed format, generated once from its field list:
 * one template per row, as a hand-written one (a loop over the fields cost the
 * client up to twice as much for 10,000 children). Its output is byte for byte
 * what the hand-written encoder sent.
 */
function encoder<T>(fields: readonly ClientField[]): (rows: readonly T[]) => string {
  const last = fields.length - 1;
  const omit = fields[last]?.omitEmpty === true;
  const head = fields.slice(0, omit ? last : fields.length).map((_, k) => `\${e${k}(r)}`);
  const template = `\`${head.join(`\${FIELD}`)}\``;
  const line = omit ? `${template} + ((x) => (x === "" ? "" : FIELD + x))(e${last}(r))` : template;
  const source = `return (rows) => {
    const parts = new Array(rows.length);
    for (let i = 0; i < rows.length; i++) {
      const r = rows[i];
      parts[i] = ${line};
    }
    return parts.join(ROW);
  };`;
  const params = fields.map((_, k) => `e${k}`);
  return new Function("FIELD", "ROW", ...params, source)(FIELD, ROW, ...fields.map((f) => f.encode));
}

/** New tasks as one text parameter, for \`newTasksRelation\`. */
export const encodeNewTasks: (rows: readonly NewTaskRow[]) => string = encoder<NewTaskRow>(NEW_TASKS);

/**
 * The rows of \`encodeNewTasks\` in parameter \`$n\`, as relation \`c\`. Each row is
 * split once (OFFSET 0 keeps the split from being repeated per field); an
 * empty field is NULL.
 */
export function newTasksRelation(n: number): string {
  const columns = NEW_TASKS.map((c, i) => `${c.sql(`f[${i + 1}]`)} AS ${c.column}`).join(", ");
  return `(SELECT ${columns}
            FROM (SELECT string_to_array(r, ${FIELD_SQL}, '') AS f
                    FROM unnest(string_to_array($${n}::text, ${ROW_SQL})) AS r OFFSET 0) p) AS c`;
}
