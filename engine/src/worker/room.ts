/**
 * A node's room: the attempts it can take now, counted from the attempts that
 * execute, the assignments waiting to start, and the outcomes not recorded
 * yet. No I/O: the worker tells it what starts and ends.
 */
export class Room<W> {
  /** Attempts whose handler runs. */
  private executing = 0;
  /**
   * Assignments that arrived while the node ran at capacity: they start, in
   * order, as running attempts end (see ended).
   */
  private waiting: W[] = [];
  private waitingHead = 0;
  /** Told when attempts ended and the node has room again (see LocalWorker). */
  private listener: (() => void) | undefined;

  constructor(
    /** maxParallelTasksInNode. */
    private readonly capacity: number,
    /** Outcomes that may wait to be recorded before they count against the room again. */
    private readonly backlogAllowance: number,
    /** Outcomes queued or in completion batches in flight. */
    private readonly unrecorded: () => number,
    /** Starts a waiting assignment (it calls started(), unless the assignment is void by now). */
    private readonly start: (waiting: W) => void,
  ) {}

  /**
   * Attempts this node can take now: its capacity less the attempts running
   * and waiting to start. An attempt that has ended counts no more, though its
   * outcome may not be recorded yet: the planner of this node fills the room
   * while the completion batch runs, instead of after it. Outcomes beyond the
   * completion batches in flight count again, so a database slower to record
   * than the tasks are to run holds the node back rather than its memory growing.
   */
  room(): number {
    const backlog = Math.max(0, this.unrecorded() - this.backlogAllowance);
    return Math.max(0, this.capacity - this.executing - this.waitingCount - backlog);
  }

  /** Whether every slot executes an attempt: an assignment arriving now waits. */
  get isFull(): boolean {
    return this.executing >= this.capacity;
  }

  get executingCount(): number {
    return this.executing;
  }

  get waitingCount(): number {
    return this.waiting.length - this.waitingHead;
  }

  /** Queues an assignment until an attempt ends. */
  wait(waiting: W): void {
    this.waiting.push(waiting);
  }

  /** An attempt started: it holds a slot until ended(). */
  started(): void {
    this.executing++;
  }

  /** An attempt ended: starts the next waiting ones while there is a free slot. */
  ended(): void {
    this.executing--;
    while (this.waitingHead < this.waiting.length && this.executing < this.capacity) {
      this.start(this.waiting[this.waitingHead++] as W);
    }
    if (this.waitingHead === this.waiting.length) {
      this.waiting = [];
      this.waitingHead = 0;
    }
  }

  /** Forgets the assignments waiting (they stay assigned in the database); returns them. */
  dropWaiting(): W[] {
    const dropped = this.waiting.slice(this.waitingHead);
    this.waiting = [];
    this.waitingHead = 0;
    return dropped;
  }

  /** The node's assignments are void (declared dead): the count starts again from nothing. */
  reset(): void {
    this.dropWaiting();
    this.executing = 0;
  }

  /** See LocalWorker. */
  onRoom(listener: () => void): void {
    this.listener = listener;
  }

  /** Attempts ended (or outcomes were recorded): tells the listener that room may be free. */
  announce(): void {
    this.listener?.();
  }
}
