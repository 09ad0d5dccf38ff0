/**
 * Copy-on-write B+tree in the arena. Owner: reads from any thread; writes (insert, remove) by the writer only.
 *
 * Node (512 bytes, 128 u32 words):
 *
 *   word 0 count | word 1 leaf (1) or inner (0) | words 2-3 the epoch written, an f64 (never wraps) | entries from word 4
 *   leaf entry:  key words (shape.keyWords) then value words (shape.valueWords)
 *   inner entry: key words then the child offset; key of child i <= every key in child i (i = 0 included),
 *                and > every key in child i - 1
 *
 * Invariants:
 * - A node whose epoch is not the epoch being built is immutable: a change copies it (path copying) and retires
 *   the old one at the building epoch. A node written in the building epoch is changed in place; no reader can
 *   reach it until the publish.
 * - Keys are unique. Every node has 1..capacity entries, except an empty tree, whose root is 0.
 * - An inner entry's key is exactly the smallest key of its child's subtree, kept so on every insert and remove.
 *   So every key in an inner node is also a live leaf key: in taskId mode its string blob belongs to a stored
 *   task (a separator left behind by a deleted key would point at a freed, reused blob).
 * - Key order: u32 words lexicographically; in taskId mode the third word is a string blob and two keys whose
 *   first two words (the first 8 UTF-8 bytes, big-endian) are equal compare by the whole strings.
 */
import { assert } from './assert.js';
import type { ArenaAllocator, ArenaView } from './arena.js';

export const nodeBytes = 512;
const nodeWords = nodeBytes >>> 2;
const headerWords = 4;
const countWord = 0;
const leafWord = 1;
const epochF64 = 1; // Float64Array index relative to the node (byte 8)
export const depthMax = 24;

export const compareWords = 0;
export const compareTaskId = 1;

export class TreeShape {
  readonly keyWords: number;
  readonly valueWords: number;
  readonly mode: number;
  readonly leafEntryWords: number;
  readonly innerEntryWords: number;
  readonly leafCapacity: number;
  readonly innerCapacity: number;

  constructor(keyWords: number, valueWords: number, mode = compareWords) {
    assert(keyWords >= 1 && keyWords <= 8);
    assert(valueWords >= 0 && valueWords <= 4);
    assert(mode === compareWords || (mode === compareTaskId && keyWords === 3));
    this.keyWords = keyWords;
    this.valueWords = valueWords;
    this.mode = mode;
    this.leafEntryWords = keyWords + valueWords;
    this.innerEntryWords = keyWords + 1;
    this.leafCapacity = Math.floor((nodeWords - headerWords) / this.leafEntryWords);
    this.innerCapacity = Math.floor((nodeWords - headerWords) / this.innerEntryWords);
    assert(this.leafCapacity >= 4 && this.innerCapacity >= 4);
  }
}

/** A search key: words, plus the UTF-8 bytes of the string in taskId mode. Reused; never shared by threads. */
export class TreeKey {
  readonly words: Uint32Array;
  bytes: Uint8Array;
  // The id's bytes again, in an aligned buffer read 4 bytes at a time (little-endian words, like the arena's).
  private idBuffer = new Uint8Array(64);
  private idWordsView = new Uint32Array(this.idBuffer.buffer);

  constructor(keyWords: number) {
    this.words = new Uint32Array(keyWords);
    this.bytes = new Uint8Array(0);
  }

  get idWords(): Uint32Array {
    return this.idWordsView;
  }

  /** Sets a taskId-mode key from a task id's UTF-8 bytes and (for inserts) its string blob. */
  setTaskId(bytes: Uint8Array, blob: number): void {
    this.bytes = bytes;
    this.words[0] = prefixWord(bytes, 0);
    this.words[1] = prefixWord(bytes, 4);
    this.words[2] = blob;
    if (bytes.length + 4 > this.idBuffer.length) {
      this.idBuffer = new Uint8Array((bytes.length + 64) & ~3);
      this.idWordsView = new Uint32Array(this.idBuffer.buffer);
    }
    this.idBuffer.set(bytes);
    this.idBuffer.fill(0, bytes.length, (bytes.length + 4) & ~3);
  }
}

/**
 * Compares a task id key with a string blob whose first 8 bytes are known to be equal: 4 bytes at a time
 * (string blobs start 4-aligned after their length word), then byte by byte where a word differs.
 */
function compareIdTail(view: ArenaView, key: TreeKey, blob: number): number {
  const u32 = view.u32;
  const u8 = view.u8;
  const bytes = key.bytes;
  const words = key.idWords;
  const blobLength = u32[blob >>> 2]!;
  const length = bytes.length < blobLength ? bytes.length : blobLength;
  const base = (blob + 4) >>> 2;
  const wholeWords = length >>> 2;
  let i = 2;
  while (i < wholeWords && words[i] === u32[base + i]) i++;
  for (let at = i * 4; at < length; at++) {
    const x = bytes[at]!;
    const y = u8[blob + 4 + at]!;
    if (x !== y) return x - y;
  }
  return bytes.length - blobLength;
}

export function prefixWord(bytes: Uint8Array, start: number): number {
  return (((bytes[start] ?? 0) << 24) | ((bytes[start + 1] ?? 0) << 16) | ((bytes[start + 2] ?? 0) << 8) |
    (bytes[start + 3] ?? 0)) >>> 0;
}

/** Compares the key with the key at word index `at`. */
function compareKey(view: ArenaView, shape: TreeShape, key: TreeKey, at: number): number {
  const u32 = view.u32;
  const words = key.words;
  const keyWords = shape.mode === compareTaskId ? 2 : shape.keyWords;
  for (let i = 0; i < keyWords; i++) {
    const a = words[i]!;
    const b = u32[at + i]!;
    if (a !== b) return a < b ? -1 : 1;
  }
  if (shape.mode === compareTaskId) return compareIdTail(view, key, u32[at + 2]!);
  return 0;
}

/** First entry index in a leaf whose key is >= key. */
function leafLowerBound(view: ArenaView, shape: TreeShape, node: number, key: TreeKey): number {
  const base = (node >>> 2) + headerWords;
  const stride = shape.leafEntryWords;
  let low = 0;
  let high = view.u32[(node >>> 2) + countWord]!;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if (compareKey(view, shape, key, base + middle * stride) > 0) low = middle + 1;
    else high = middle;
  }
  return low;
}

/** The child index of an inner node to descend into for key: the last whose key is <= key, or 0. */
function innerChild(view: ArenaView, shape: TreeShape, node: number, key: TreeKey): number {
  const base = (node >>> 2) + headerWords;
  const stride = shape.innerEntryWords;
  let low = 1;
  let high = view.u32[(node >>> 2) + countWord]!;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if (compareKey(view, shape, key, base + middle * stride) >= 0) low = middle + 1;
    else high = middle;
  }
  return low - 1;
}

function isLeaf(view: ArenaView, node: number): boolean {
  return view.u32[(node >>> 2) + leafWord] === 1;
}

export function nodeCount(view: ArenaView, node: number): number {
  return view.u32[(node >>> 2) + countWord]!;
}

function childAt(view: ArenaView, shape: TreeShape, node: number, index: number): number {
  return view.u32[(node >>> 2) + headerWords + index * shape.innerEntryWords + shape.keyWords]!;
}

/** The word index of the entry with exactly this key, or -1. */
export function treeFind(view: ArenaView, shape: TreeShape, root: number, key: TreeKey): number {
  if (root === 0) return -1;
  let node = root;
  for (let depth = 0; !isLeaf(view, node); depth++) {
    assert(depth < depthMax);
    node = childAt(view, shape, node, innerChild(view, shape, node, key));
  }
  const index = leafLowerBound(view, shape, node, key);
  if (index >= nodeCount(view, node)) return -1;
  const at = (node >>> 2) + headerWords + index * shape.leafEntryWords;
  return compareKey(view, shape, key, at) === 0 ? at : -1;
}

/**
 * In-order iteration from a lower bound. `entry` is the word index of the current entry's key; its values
 * follow at entry + shape.keyWords. Reusable: seek() again for another scan.
 */
export class TreeCursor {
  private readonly nodes = new Uint32Array(depthMax);
  private readonly indexes = new Int32Array(depthMax);
  private depth = 0;
  private view: ArenaView;
  private shape: TreeShape;
  entry = -1;

  constructor(view: ArenaView, shape: TreeShape) {
    this.view = view;
    this.shape = shape;
  }

  /** Positions on the first entry >= key (or the first entry, with key null). False if there is none. */
  seek(root: number, key: TreeKey | null, shape: TreeShape = this.shape): boolean {
    const view = this.view;
    this.shape = shape;
    this.depth = 0;
    this.entry = -1;
    if (root === 0) return false;
    let node = root;
    while (!isLeaf(view, node)) {
      assert(this.depth < depthMax - 1);
      const index = key === null ? 0 : innerChild(view, shape, node, key);
      this.nodes[this.depth] = node;
      this.indexes[this.depth] = index;
      this.depth++;
      node = childAt(view, shape, node, index);
    }
    this.nodes[this.depth] = node;
    this.indexes[this.depth] = key === null ? 0 : leafLowerBound(view, shape, node, key);
    return this.settle();
  }

  next(): boolean {
    if (this.entry < 0) return false;
    this.indexes[this.depth]!++;
    return this.settle();
  }

  /** Moves up and right past exhausted nodes, then down to the leftmost leaf entry. */
  private settle(): boolean {
    const view = this.view;
    const shape = this.shape;
    let level = this.depth;
    while (this.indexes[level]! >= nodeCount(view, this.nodes[level]!)) {
      if (level === 0) {
        this.entry = -1;
        return false;
      }
      level--;
      this.indexes[level]!++;
    }
    while (level < this.depth) {
      const child = childAt(view, shape, this.nodes[level]!, this.indexes[level]!);
      level++;
      this.nodes[level] = child;
      this.indexes[level] = 0;
    }
    const leaf = this.nodes[level]!;
    this.entry = (leaf >>> 2) + headerWords + this.indexes[level]! * shape.leafEntryWords;
    return true;
  }

  /** The value word `index` of the current entry. */
  value(index = 0): number {
    return this.view.u32[this.entry + this.shape.keyWords + index]!;
  }

  keyWord(index: number): number {
    return this.view.u32[this.entry + index]!;
  }
}

/** The writer's context for changing trees: where to allocate, and the epoch being built. */
export interface WriteContext {
  readonly view: ArenaView;
  readonly allocator: ArenaAllocator;
  epochBuilding: number;
}

function allocNode(context: WriteContext, leaf: boolean): number {
  const node = context.allocator.alloc(nodeBytes);
  const u32 = context.view.u32;
  const word = node >>> 2;
  u32[word + countWord] = 0;
  u32[word + leafWord] = leaf ? 1 : 0;
  context.view.f64[(node >>> 3) + epochF64] = context.epochBuilding;
  return node;
}

/** The node itself if written in this epoch, else a copy (and the original is retired). */
function writable(context: WriteContext, node: number): number {
  if (context.view.f64[(node >>> 3) + epochF64] === context.epochBuilding) return node;
  const copy = context.allocator.alloc(nodeBytes);
  const u32 = context.view.u32;
  u32.copyWithin(copy >>> 2, node >>> 2, (node >>> 2) + nodeWords);
  context.view.f64[(copy >>> 3) + epochF64] = context.epochBuilding;
  context.allocator.retire(node, nodeBytes, context.epochBuilding);
  return copy;
}

function dropNode(context: WriteContext, node: number): void {
  if (context.view.f64[(node >>> 3) + epochF64] === context.epochBuilding) context.allocator.freeNow(node, nodeBytes);
  else context.allocator.retire(node, nodeBytes, context.epochBuilding);
}

/** Shared state of one insert or remove: the path from the root, so no allocation per call. */
class Path {
  readonly nodes = new Uint32Array(depthMax);
  readonly indexes = new Int32Array(depthMax);
  length = 0;
}
const path = new Path();

function descend(view: ArenaView, shape: TreeShape, root: number, key: TreeKey): number {
  let node = root;
  path.length = 0;
  while (!isLeaf(view, node)) {
    assert(path.length < depthMax - 1);
    const index = innerChild(view, shape, node, key);
    path.nodes[path.length] = node;
    path.indexes[path.length] = index;
    path.length++;
    node = childAt(view, shape, node, index);
  }
  return node;
}

/** Inserts entry words at index, shifting the rest right. The node must be writable and not full. */
function insertEntry(u32: Uint32Array, node: number, index: number, stride: number, source: Uint32Array,
  sourceLength: number): void {
  const word = node >>> 2;
  const count = u32[word + countWord]!;
  const at = word + headerWords + index * stride;
  u32.copyWithin(at + stride, at, word + headerWords + count * stride);
  for (let i = 0; i < sourceLength; i++) u32[at + i] = source[i]!;
  u32[word + countWord] = count + 1;
}

function removeEntry(u32: Uint32Array, node: number, index: number, stride: number): void {
  const word = node >>> 2;
  const count = u32[word + countWord]!;
  const at = word + headerWords + index * stride;
  u32.copyWithin(at, at + stride, word + headerWords + count * stride);
  u32[word + countWord] = count - 1;
}

/** Sets the key of the parent's entry `index` to the child's first key (the smallest of its subtree). */
function copyFirstKey(u32: Uint32Array, shape: TreeShape, parent: number, index: number, child: number): void {
  const from = (child >>> 2) + headerWords;
  const to = (parent >>> 2) + headerWords + index * shape.innerEntryWords;
  for (let i = 0; i < shape.keyWords; i++) u32[to + i] = u32[from + i]!;
}

/** Moves the upper half of a full node into a new right sibling; returns the sibling. */
function split(context: WriteContext, node: number, stride: number, leaf: boolean): number {
  const right = allocNode(context, leaf);
  const u32 = context.view.u32;
  const word = node >>> 2;
  const count = u32[word + countWord]!;
  const keep = count >>> 1;
  const start = word + headerWords + keep * stride;
  u32.copyWithin((right >>> 2) + headerWords, start, word + headerWords + count * stride);
  u32[(right >>> 2) + countWord] = count - keep;
  u32[word + countWord] = keep;
  return right;
}

const entryScratch = new Uint32Array(16);

/**
 * Inserts or replaces (key -> values). Returns the new root. `replaced` tells whether the key existed.
 */
export class TreeWriter {
  replaced = false;
  removed = false;

  insert(context: WriteContext, shape: TreeShape, root: number, key: TreeKey, values: ArrayLike<number>): number {
    const view = context.view;
    assert(values.length === shape.valueWords);
    this.replaced = false;
    if (root === 0) {
      const leaf = allocNode(context, true);
      this.writeLeafEntry(view.u32, shape, leaf, 0, key, values, true);
      return leaf;
    }
    const leaf = writable(context, descend(view, shape, root, key));
    const u32 = view.u32;
    const index = leafLowerBound(view, shape, leaf, key);
    const count = u32[(leaf >>> 2) + countWord]!;
    let right = 0;
    if (index < count && compareKey(view, shape, key, (leaf >>> 2) + headerWords + index * shape.leafEntryWords) === 0) {
      this.replaced = true;
      this.writeLeafEntry(u32, shape, leaf, index, key, values, false);
    } else if (count < shape.leafCapacity) {
      this.writeLeafEntry(u32, shape, leaf, index, key, values, true);
    } else {
      right = split(context, leaf, shape.leafEntryWords, true);
      const grown = view.u32; // an allocation may have grown the arena: views are re-created then
      const keep = grown[(leaf >>> 2) + countWord]!;
      if (index <= keep) this.writeLeafEntry(grown, shape, leaf, index, key, values, true);
      else this.writeLeafEntry(grown, shape, right, index - keep, key, values, true);
    }
    return this.propagate(context, shape, leaf, right);
  }

  private writeLeafEntry(u32: Uint32Array, shape: TreeShape, leaf: number, index: number, key: TreeKey,
    values: ArrayLike<number>, insert: boolean): void {
    for (let i = 0; i < shape.keyWords; i++) entryScratch[i] = key.words[i]!;
    for (let i = 0; i < shape.valueWords; i++) entryScratch[shape.keyWords + i] = values[i]!;
    if (insert) insertEntry(u32, leaf, index, shape.leafEntryWords, entryScratch, shape.leafEntryWords);
    else {
      const at = (leaf >>> 2) + headerWords + index * shape.leafEntryWords;
      for (let i = 0; i < shape.leafEntryWords; i++) u32[at + i] = entryScratch[i]!;
    }
  }

  /** Rewrites the path above a changed child (`child`, plus a new right sibling when it split). */
  private propagate(context: WriteContext, shape: TreeShape, child: number, right: number): number {
    const stride = shape.innerEntryWords;
    for (let level = path.length - 1; level >= 0; level--) {
      const parent = writable(context, path.nodes[level]!);
      let u32 = context.view.u32;
      const index = path.indexes[level]!;
      u32[(parent >>> 2) + headerWords + index * stride + shape.keyWords] = child;
      copyFirstKey(u32, shape, parent, index, child);
      let parentRight = 0;
      if (right !== 0) {
        for (let i = 0; i < shape.keyWords; i++) entryScratch[i] = u32[(right >>> 2) + headerWords + i]!;
        entryScratch[shape.keyWords] = right;
        if (u32[(parent >>> 2) + countWord]! < shape.innerCapacity) {
          insertEntry(u32, parent, index + 1, stride, entryScratch, stride);
        } else {
          parentRight = split(context, parent, stride, false);
          u32 = context.view.u32;
          const keep = u32[(parent >>> 2) + countWord]!;
          if (index + 1 <= keep) insertEntry(u32, parent, index + 1, stride, entryScratch, stride);
          else insertEntry(u32, parentRight, index + 1 - keep, stride, entryScratch, stride);
        }
      }
      child = parent;
      right = parentRight;
    }
    if (right === 0) return child;
    const root = allocNode(context, false);
    const u32 = context.view.u32;
    for (const [index, node] of [[0, child], [1, right]] as const) {
      for (let i = 0; i < shape.keyWords; i++) entryScratch[i] = u32[(node >>> 2) + headerWords + i]!;
      entryScratch[shape.keyWords] = node;
      insertEntry(u32, root, index, stride, entryScratch, stride);
    }
    return root;
  }

  /** Removes the key if present (`removed` says whether it was). Returns the new root. */
  remove(context: WriteContext, shape: TreeShape, root: number, key: TreeKey): number {
    const view = context.view;
    this.removed = false;
    if (root === 0) return 0;
    const found = descend(view, shape, root, key);
    const index = leafLowerBound(view, shape, found, key);
    if (index >= nodeCount(view, found)) return root;
    if (compareKey(view, shape, key, (found >>> 2) + headerWords + index * shape.leafEntryWords) !== 0) return root;
    this.removed = true;
    let child = writable(context, found);
    removeEntry(view.u32, child, index, shape.leafEntryWords);
    let leaf = true;
    for (let level = path.length - 1; level >= 0; level--) {
      const parent = writable(context, path.nodes[level]!);
      const u32 = view.u32;
      const childIndex = path.indexes[level]!;
      const stride = shape.innerEntryWords;
      u32[(parent >>> 2) + headerWords + childIndex * stride + shape.keyWords] = child;
      const childCount = u32[(child >>> 2) + countWord]!;
      if (childCount === 0) {
        dropNode(context, child);
        removeEntry(u32, parent, childIndex, stride);
      } else {
        copyFirstKey(u32, shape, parent, childIndex, child);
        this.mergeSmall(context, shape, parent, childIndex, leaf);
      }
      child = parent;
      leaf = false;
    }
    // Collapse: an empty root leaves an empty tree; an inner root with one child gives way to it.
    const u32 = view.u32;
    let newRoot = child;
    while (true) {
      const count = u32[(newRoot >>> 2) + countWord]!;
      if (count === 0) {
        dropNode(context, newRoot);
        return 0;
      }
      if (count > 1 || isLeaf(view, newRoot)) return newRoot;
      const only = childAt(view, shape, newRoot, 0);
      dropNode(context, newRoot);
      newRoot = only;
    }
  }

  /** Merges a small child into a neighbour when both fit in one node, so deletes keep nodes reasonably full. */
  private mergeSmall(context: WriteContext, shape: TreeShape, parent: number, index: number, leaf: boolean): void {
    let u32 = context.view.u32;
    const stride = shape.innerEntryWords;
    const entryStride = leaf ? shape.leafEntryWords : shape.innerEntryWords;
    const capacity = leaf ? shape.leafCapacity : shape.innerCapacity;
    const parentCount = u32[(parent >>> 2) + countWord]!;
    const child = childAt(context.view, shape, parent, index);
    if (u32[(child >>> 2) + countWord]! * 4 >= capacity || parentCount < 2) return;
    const leftIndex = index > 0 ? index - 1 : index;
    const left = childAt(context.view, shape, parent, leftIndex);
    const right = childAt(context.view, shape, parent, leftIndex + 1);
    const leftCount = u32[(left >>> 2) + countWord]!;
    const rightCount = u32[(right >>> 2) + countWord]!;
    if (leftCount + rightCount > capacity) return;
    const target = writable(context, left);
    u32 = context.view.u32;
    u32.copyWithin((target >>> 2) + headerWords + leftCount * entryStride, (right >>> 2) + headerWords,
      (right >>> 2) + headerWords + rightCount * entryStride);
    u32[(target >>> 2) + countWord] = leftCount + rightCount;
    u32[(parent >>> 2) + headerWords + leftIndex * stride + shape.keyWords] = target;
    dropNode(context, right);
    removeEntry(u32, parent, leftIndex + 1, stride);
  }
}

/** Every node of a tree, for accounting and tests (a full walk: never on a hot path). */
export function treeNodes(view: ArenaView, shape: TreeShape, root: number, visit: (node: number) => void): void {
  if (root === 0) return;
  visit(root);
  if (isLeaf(view, root)) return;
  const count = nodeCount(view, root);
  for (let i = 0; i < count; i++) treeNodes(view, shape, childAt(view, shape, root, i), visit);
}

/**
 * Builds a tree from entries in strictly increasing key order, for loading a snapshot into an empty table
 * (workers/writer/restore-tasks.ts): leaves are filled to capacity left to right, then each inner level is built
 * from the level below, every node stamped with the building epoch. `entries` holds `count` entries of
 * shape.leafEntryWords words each (key words, then value words), as a leaf stores them.
 *
 * The result holds the same entries as inserting them one by one into an empty tree, and keeps the invariants
 * above: 1..capacity entries per node (only the last node of a level can be short), all leaves at one depth, an
 * inner entry's key copied from its child's first entry (the smallest key of the child's subtree: by induction
 * from the leaves), and an inner root has at least 2 children. Nodes are fuller than inserts leave them, so the
 * first insert into a leaf after the load splits it. Returns the root (0 for no entries).
 */
export function treeBuild(context: WriteContext, shape: TreeShape, entries: Uint32Array, count: number): number {
  assert(count >= 0 && count * shape.leafEntryWords <= entries.length);
  if (count === 0) return 0;
  for (let i = 1; i < count; i++) assert(compareEntries(context.view, shape, entries, i - 1, i) < 0, 'keys in order');
  let nodes = packNodes(context, entries, count, shape.leafEntryWords, shape.leafCapacity, true);
  for (let depth = 1; nodes.length > 1; depth++) {
    assert(depth < depthMax);
    // The level above: one entry per node, its first key (the smallest of its subtree) and the node.
    const level = new Uint32Array(nodes.length * shape.innerEntryWords);
    const u32 = context.view.u32;
    for (let i = 0; i < nodes.length; i++) {
      const from = (nodes[i]! >>> 2) + headerWords;
      for (let k = 0; k < shape.keyWords; k++) level[i * shape.innerEntryWords + k] = u32[from + k]!;
      level[i * shape.innerEntryWords + shape.keyWords] = nodes[i]!;
    }
    nodes = packNodes(context, level, nodes.length, shape.innerEntryWords, shape.innerCapacity, false);
  }
  return nodes[0]!;
}

/** Packs entries of `stride` words into new nodes of `capacity` entries, left to right; returns the nodes. */
function packNodes(context: WriteContext, entries: Uint32Array, count: number, stride: number, capacity: number,
  leaf: boolean): Uint32Array {
  const nodes = new Uint32Array(Math.ceil(count / capacity));
  for (let n = 0; n < nodes.length; n++) {
    const first = n * capacity;
    const take = Math.min(capacity, count - first);
    const node = allocNode(context, leaf);
    const u32 = context.view.u32; // re-read after each allocation: the arena may have grown
    u32.set(entries.subarray(first * stride, (first + take) * stride), (node >>> 2) + headerWords);
    u32[(node >>> 2) + countWord] = take;
    nodes[n] = node;
  }
  return nodes;
}

/** Compares entries a and b of an entries array in key order (in taskId mode, by the strings past 8 bytes). */
function compareEntries(view: ArenaView, shape: TreeShape, entries: Uint32Array, a: number, b: number): number {
  const stride = shape.leafEntryWords;
  const keyWords = shape.mode === compareTaskId ? 2 : shape.keyWords;
  for (let i = 0; i < keyWords; i++) {
    const x = entries[a * stride + i]!;
    const y = entries[b * stride + i]!;
    if (x !== y) return x < y ? -1 : 1;
  }
  if (shape.mode !== compareTaskId) return 0;
  // Task ids are at most textBytesMax (256) bytes: within what compareBlobs compares. The first 8 bytes (words 0
  // and 1, zero-padded) are equal here.
  return view.compareBlobs(entries[a * stride + 2]!, entries[b * stride + 2]!, 8);
}
