/**
 * A reader thread's slot in the control block: pin the published revision, read, release.
 * Owner: one reader thread per slot (claimed once, with compareExchange on the owner word).
 *
 * Pin protocol (see core/layout.ts): store the epoch, the time and PINNED, then re-check the published epoch;
 * retry if it moved. Roots loaded after that are at least as new as the pin, so the writer keeps everything
 * they reach until the pin is released, or until it expires (pinMsMax), after which the query fails.
 * A snapshot pins long (PINNED_LONG, honoured up to snapshotPinMsMax): the writer thread pins the revision it has
 * just published (pinPublishedLong), between two groups, so that the revision and the idempotency window it hands
 * to the snapshot worker agree; the worker adopts the slot (ReaderSlot.adopt) and closes it when done.
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

  /** Claims a free slot for `ownerId`; with `adoptSlot` >= 0, takes over that slot, claimed by another thread. */
  constructor(control: SharedArrayBuffer, ownerId: number, adoptSlot = -1) {
    this.control = new Int32Array(control);
    this.controlF64 = new Float64Array(control);
    if (adoptSlot >= 0) {
      assert(adoptSlot < readerSlotsMax, 'no such slot');
      assert(Atomics.load(this.control, layout.slotWord(adoptSlot, layout.slotOwnerWord)) !== 0, 'adopting a free slot');
      this.slot = adoptSlot;
      return;
    }
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

  /** The slot a snapshot's spawner pinned (pinPublishedLong), in the snapshot worker. */
  static adopt(control: SharedArrayBuffer, slotIndex: number): ReaderSlot {
    return new ReaderSlot(control, 0, slotIndex);
  }

  /** Pins the published revision; returns the offset of its root block. */
  pin(now: number): number {
    return this.pinAs(now, layout.slotStatePinned);
  }

  /** Pins the published revision for a snapshot (expires after snapshotPinMsMax); returns its root block. */
  pinLong(now: number): number {
    return this.pinAs(now, layout.slotStatePinnedLong);
  }

  private pinAs(now: number, state: number): number {
    const control = this.control;
    const epochWord = layout.slotWord(this.slot, layout.slotEpochWord);
    const stateWord = layout.slotWord(this.slot, layout.slotStateWord);
    for (let attempt = 0; ; attempt++) {
      assert(attempt < 1_000_000, 'could not pin a revision');
      const epoch = Atomics.load(control, layout.controlEpochPublishedWord);
      Atomics.store(control, epochWord, epoch);
      this.controlF64[layout.controlPinTimeF64 + this.slot] = now;
      Atomics.store(control, stateWord, state);
      if (Atomics.load(control, layout.controlEpochPublishedWord) === epoch) break;
    }
    return Atomics.load(control, layout.controlRootPublishedWord) >>> 0; // an offset: arenas pass 2 GiB
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

/** The owner id of snapshot slots (above any threadId + 1, below the engine's stats slot). */
export const snapshotSlotOwner = 0x7ffd_0000;

/**
 * Claims a slot and pins the currently published revision long, for a snapshot. Call it in the writer thread
 * between two groups (right after publish), so that nothing newer is published meanwhile; hand the slot index to
 * the snapshot worker. Returns the slot and the pinned root block.
 */
export function pinPublishedLong(control: SharedArrayBuffer, now: number): { slot: ReaderSlot; root: number } {
  const slot = new ReaderSlot(control, snapshotSlotOwner);
  return { slot, root: slot.pinLong(now) };
}
