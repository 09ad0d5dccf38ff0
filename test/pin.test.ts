/**
 * Pins: the published root block's offset comes back whole past 2 GiB (the control block holds it in an Int32
 * word; arenas grow to 4 GiB).
 */
import test from 'ava';
import * as layout from '../core/layout.js';
import { pinClockMs, pinPublishedLong, ReaderSlot } from '../workers/reader/pin.js';

test('a pin returns a root block offset above 2 GiB as it was published', (t) => {
  const control = new SharedArrayBuffer(layout.controlBytes);
  const words = new Int32Array(control);
  const root = 0x8000_0040; // 2 GiB + 64: negative as an int32
  Atomics.store(words, layout.controlRootPublishedWord, root);
  Atomics.store(words, layout.controlEpochPublishedWord, 7);
  const slot = new ReaderSlot(control, 12345);
  t.is(slot.pin(pinClockMs()), root);
  slot.release();
  const long = pinPublishedLong(control, pinClockMs());
  t.is(long.root, root);
  long.slot.close();
});
