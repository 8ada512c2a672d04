/**
 * Something that times out: it sets `deadline` (epoch ms) and the sweep calls `expire()` once
 * that has passed. The links belong to the sweep.
 */
export abstract class Deadline {
  deadline = 0
  /** @internal */
  prevArmed: Deadline | undefined = undefined
  /** @internal */
  nextArmed: Deadline | undefined = undefined
  /** @internal */
  armed = false

  abstract expire(): void
}

/**
 * Deadlines checked by one timer: a call sets a number instead of arming and clearing a timer
 * of its own (progress moves it the same way). The timer runs while something is armed and stops
 * at the first check that finds nothing.
 *
 * The armed items are an intrusive list, not a Set: a Set that takes and drops thousands of
 * members a second keeps replacing its table, and a replaced table that already sits in V8's old
 * generation still points at the members it held. Those then survive young-generation GC and are
 * promoted with everything they reference (each relayed call's request and reply objects: 7 KB
 * per call, a third of vmcp's CPU at 32 concurrent calls). Unlinking leaves nothing pointing at
 * a finished call.
 */
export class DeadlineSweep {
  #head: Deadline | undefined
  #timer: NodeJS.Timeout | undefined
  readonly #tickMs: number

  /** `tickMs`: how often deadlines are checked; an item expires up to this late. */
  constructor(tickMs: number) {
    this.#tickMs = tickMs
  }

  /** Arms `item` (again) to expire `ms` from now. */
  arm(item: Deadline, ms: number): void {
    item.deadline = Date.now() + ms
    if (!item.armed) {
      item.armed = true
      item.nextArmed = this.#head
      if (this.#head) this.#head.prevArmed = item
      this.#head = item
    }
    if (this.#timer) return
    this.#timer = setInterval(() => this.#check(), this.#tickMs)
    this.#timer.unref()
  }

  /** Disarms `item`; nothing when it is not armed. */
  disarm(item: Deadline): void {
    if (!item.armed) return
    const { prevArmed: prev, nextArmed: next } = item
    if (prev) prev.nextArmed = next
    else this.#head = next
    if (next) next.prevArmed = prev
    item.prevArmed = undefined
    item.nextArmed = undefined
    item.armed = false
  }

  #check(): void {
    if (!this.#head) {
      clearInterval(this.#timer)
      this.#timer = undefined
      return
    }
    const now = Date.now()
    for (let item: Deadline | undefined = this.#head; item; ) {
      const next: Deadline | undefined = item.nextArmed
      if (item.deadline <= now) {
        this.disarm(item)
        item.expire()
      }
      item = next
    }
  }
}
