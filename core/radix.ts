/**
 * Copy-on-write radix trie mapping a dense u32 index to a u32 value (0 = none). Owner: reads from any thread;
 * writes by the writer only.
 *
 * Node: [f64 epoch written][32 u32 slots] = 136 bytes. A trie of depth d holds indexes < 32^d;
 * level 0 slots hold values, higher levels hold child nodes. Depth 0 is the empty trie.
 *
 * Invariants: as for the B+tree, a node not written in the building epoch is immutable and is copied (and
 * retired) on change; the depth only grows (by putting the old root under a new one).
 */
import { assert } from './assert.js';
import type { ArenaView } from './arena.js';
import type { WriteContext } from './btree.js';

export const radixBits = 5;
export const radixFanout = 1 << radixBits;
export const radixNodeBytes = 8 + radixFanout * 4;
const radixMask = radixFanout - 1;
const depthMax = 7; // 32^7 > 2^32

export function radixGet(view: ArenaView, root: number, depth: number, index: number): number {
  if (depth === 0) return 0;
  if (depth < depthMax && index >= 2 ** (radixBits * depth)) return 0;
  const u32 = view.u32;
  let node = root;
  for (let level = depth - 1; level > 0; level--) {
    node = u32[(node >>> 2) + 2 + ((index >>> (radixBits * level)) & radixMask)]!;
    if (node === 0) return 0;
  }
  return u32[(node >>> 2) + 2 + (index & radixMask)]!;
}

function allocRadixNode(context: WriteContext): number {
  const node = context.allocator.alloc(radixNodeBytes);
  const u32 = context.view.u32;
  u32.fill(0, node >>> 2, (node + radixNodeBytes) >>> 2);
  context.view.f64[node >>> 3] = context.epochBuilding;
  return node;
}

function writableRadix(context: WriteContext, node: number): number {
  if (node === 0) return allocRadixNode(context);
  if (context.view.f64[node >>> 3] === context.epochBuilding) return node;
  const copy = context.allocator.alloc(radixNodeBytes);
  const u32 = context.view.u32;
  u32.copyWithin(copy >>> 2, node >>> 2, (node + radixNodeBytes) >>> 2);
  context.view.f64[copy >>> 3] = context.epochBuilding;
  context.allocator.retire(node, radixNodeBytes, context.epochBuilding);
  return copy;
}

/** A trie root: node and depth, changed together. */
export class RadixRoot {
  node = 0;
  depth = 0;
}

export function radixSet(context: WriteContext, root: RadixRoot, index: number, value: number): void {
  assert(index >= 0 && index <= 0xffffffff);
  while (root.depth === 0 || (root.depth < depthMax && index >= 2 ** (radixBits * root.depth))) {
    const top = allocRadixNode(context);
    if (root.node !== 0) context.view.u32[(top >>> 2) + 2] = root.node;
    root.node = top;
    root.depth++;
  }
  root.node = writableRadix(context, root.node);
  let node = root.node;
  for (let level = root.depth - 1; level > 0; level--) {
    const slot = (node >>> 2) + 2 + ((index >>> (radixBits * level)) & radixMask);
    const child = writableRadix(context, context.view.u32[slot]!);
    context.view.u32[slot] = child; // views are re-read: an allocation may have grown the arena
    node = child;
  }
  context.view.u32[(node >>> 2) + 2 + (index & radixMask)] = value;
}

/**
 * Fills an empty trie with values[i] at index i for every i < count, bottom-up (a snapshot's load:
 * workers/writer/restore-tasks.ts): full leaves left to right, then each level above from the one below, every
 * node stamped with the building epoch. The result is the trie radixSet(i, values[i]) for i = 0, 1, ... would
 * build: the same depth (the least that holds index count - 1) and the same nodes, those whose index range meets
 * 0..count-1.
 */
export function radixBuild(context: WriteContext, root: RadixRoot, values: Uint32Array, count: number): void {
  assert(root.node === 0 && root.depth === 0, 'a trie is built only when empty');
  assert(count >= 0 && count <= values.length && count <= 0x100000000);
  if (count === 0) return;
  let depth = 1;
  while (depth < depthMax && count - 1 >= 2 ** (radixBits * depth)) depth++;
  // Level 0 holds the values; each level above holds the nodes of the one below.
  let below: Uint32Array = values;
  let belowCount = count;
  for (let level = 0; level < depth; level++) {
    const nodes = new Uint32Array(Math.ceil(belowCount / radixFanout));
    for (let n = 0; n < nodes.length; n++) {
      const node = allocRadixNode(context);
      const first = n * radixFanout;
      context.view.u32.set(below.subarray(first, Math.min(belowCount, first + radixFanout)), (node >>> 2) + 2);
      nodes[n] = node;
    }
    below = nodes;
    belowCount = nodes.length;
  }
  assert(belowCount === 1);
  root.node = below[0]!;
  root.depth = depth;
}
