/**
 * A reader thread's slot in the control block: pin the published revision, read, release.
 * Owner: one reader thread per slot (claimed once, with compareExchange on the owner word).
 *
 * Pin protocol (see core/layout.ts): store the epoch, the time and PINNED, then re-check the published epoch;
 * retry if it moved. Roots loaded after that are at least as new as the pin, so the writer keeps everything
 * they reach until the pin is released, or until it expires (pinMsMax), after which the query fails.
 */
import { assert } from '../../core/assert.js';
import * as layout from '../../core/layout.js';
import { readerSlotsMax } from '../../core/limits.js';

/**
 * The clock of pin times, shared by readers (who stamp their pins) and the writer (who expires them): wall time at
 * the thread's start plus a monotonic clock, so that a step of the system clock neither expires every pin nor
 * keeps old ones alive. Threads of one process agree on it to within their start-up skew.
 */
export function pinClockMs(): number {
  return performance.timeOrigin + performance.now();
}

export class DeadlineError extends Error {
  constructor() {
    super('the read took longer than the pin limit (pinMsMax)');
    this.name = 'DeadlineError';
  }
}

export class ReaderSlot {
  private readonly control: Int32Array;
  private readonly controlF64: Float64Array;
  readonly slot: number;

  constructor(control: SharedArrayBuffer, ownerId: number) {
    this.control = new Int32Array(control);
    this.controlF64 = new Float64Array(control);
    let claimed = -1;
    for (let slot = 0; slot < readerSlotsMax && claimed < 0; slot++) {
      const word = layout.slotWord(slot, layout.slotOwnerWord);
      if (Atomics.compareExchange(this.control, word, 0, ownerId) === 0) claimed = slot;
    }
    if (claimed < 0) throw new Error(`no free reader slot (at most ${readerSlotsMax} readers)`);
    this.slot = claimed;
    // Raise slotsClaimed to cover this slot (a max by compare-and-swap).
    for (;;) {
      const high = Atomics.load(this.control, layout.controlSlotsClaimedWord);
      if (high > claimed) break;
      if (Atomics.compareExchange(this.control, layout.controlSlotsClaimedWord, high, claimed + 1) === high) break;
    }
  }

  /** Pins the published revision; returns the offset of its root block. */
  pin(now: number): number {
    const control = this.control;
    const epochWord = layout.slotWord(this.slot, layout.slotEpochWord);
    const stateWord = layout.slotWord(this.slot, layout.slotStateWord);
    for (let attempt = 0; ; attempt++) {
      assert(attempt < 1_000_000, 'could not pin a revision');
      const epoch = Atomics.load(control, layout.controlEpochPublishedWord);
      Atomics.store(control, epochWord, epoch);
      this.controlF64[layout.controlPinTimeF64 + this.slot] = now;
      Atomics.store(control, stateWord, layout.slotStatePinned);
      if (Atomics.load(control, layout.controlEpochPublishedWord) === epoch) break;
    }
    return Atomics.load(control, layout.controlRootPublishedWord);
  }

  /** Whether the writer gave up on this pin (it may have reused what the pin protected). */
  expired(): boolean {
    return Atomics.load(this.control, layout.slotWord(this.slot, layout.slotStateWord)) === layout.slotStateExpired;
  }

  /** Releases the pin; false if it had expired (the reads under it may be wrong and must be dropped). */
  release(): boolean {
    const previous = Atomics.exchange(this.control, layout.slotWord(this.slot, layout.slotStateWord),
      layout.slotStateIdle);
    return previous !== layout.slotStateExpired;
  }

  /** Gives the slot back (the thread is exiting). */
  close(): void {
    Atomics.store(this.control, layout.slotWord(this.slot, layout.slotStateWord), layout.slotStateIdle);
    Atomics.store(this.control, layout.slotWord(this.slot, layout.slotOwnerWord), 0);
  }
}
