import { quoteSchema } from "../db/identifiers.js";
import { Statements } from "../db/statement.js";
import { AdminStore } from "./admin.js";
import { AffinityStore } from "./affinity.js";
import { CancelStore } from "./cancel.js";
import { CleanerStore } from "./cleaner.js";
import { CronStore } from "./cron.js";
import { DeadLetterStore } from "./dead-letters.js";
import { JoinStore } from "./joins.js";
import { NodeStore } from "./nodes.js";
import { channelOf } from "./notify.js";
import { PlannerStore } from "./planner.js";
import { ReadStore } from "./read.js";
import { ScheduleStore } from "./schedule.js";
import { SlotStore } from "./slots.js";
import { WorkerStore } from "./worker.js";

/** All SQL of one Weft schema, built once: the schema name is validated and quoted here. */
export class Store {
  readonly schema: string;
  /** The NOTIFY channel of this schema. */
  readonly channel: string;
  readonly schedule: ScheduleStore;
  readonly worker: WorkerStore;
  readonly planner: PlannerStore;
  readonly affinity: AffinityStore;
  readonly nodes: NodeStore;
  readonly cleaner: CleanerStore;
  readonly read: ReadStore;
  readonly admin: AdminStore;
  readonly cancel: CancelStore;
  readonly joins: JoinStore;
  readonly deadLetters: DeadLetterStore;
  readonly slots: SlotStore;
  readonly cron: CronStore;

  constructor(
    schema: string,
    options: {
      readonly preparedStatements?: boolean;
      /** Read the trace columns in fetches and hand-overs (a tracer provider is in use). */
      readonly traced?: boolean;
    } = {},
  ) {
    const s = quoteSchema(schema);
    const statements = new Statements(options.preparedStatements ?? true, schema);
    this.schema = schema;
    this.channel = channelOf(schema);
    this.schedule = new ScheduleStore(s);
    this.worker = new WorkerStore(s, this.channel, statements, options.traced ?? false);
    this.planner = new PlannerStore(s, this.channel, statements, options.traced ?? false);
    this.affinity = new AffinityStore(s, this.channel, statements);
    this.nodes = new NodeStore(s, this.channel);
    this.cleaner = new CleanerStore(s);
    this.read = new ReadStore(s);
    this.admin = new AdminStore(s);
    this.cancel = new CancelStore(s, this.channel);
    this.joins = new JoinStore(s);
    this.deadLetters = new DeadLetterStore(s, this.channel);
    this.slots = new SlotStore(s, this.channel);
    this.cron = new CronStore(s, this.channel);
  }
}
