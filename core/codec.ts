/**
 * Object-API codecs for whole messages. Owner: any thread. For tests, tools and clients; the engine's hot paths
 * read FlatBuffers with the accessors instead and never unpack.
 */
import * as flatbuffers from 'flatbuffers';
import {
  QueryBatch, QueryBatchResponse, QueryBatchResponseT, QueryBatchT, QueryRequest, QueryRequestT, QueryResponse,
  QueryResponseT, Transaction, TransactionResult, TransactionResultT, TransactionT,
} from './fbs/strata.js';

interface Packable { pack(builder: flatbuffers.Builder): flatbuffers.Offset }

export function encode(message: Packable, initialBytes = 1024): Uint8Array {
  const builder = new flatbuffers.Builder(initialBytes);
  builder.finish(message.pack(builder));
  return builder.asUint8Array().slice();
}

function buffer(bytes: Uint8Array): flatbuffers.ByteBuffer {
  return new flatbuffers.ByteBuffer(bytes);
}

export const decodeTransaction = (bytes: Uint8Array): TransactionT =>
  Transaction.getRootAsTransaction(buffer(bytes)).unpack();
export const decodeTransactionResult = (bytes: Uint8Array): TransactionResultT =>
  TransactionResult.getRootAsTransactionResult(buffer(bytes)).unpack();
export const decodeQueryRequest = (bytes: Uint8Array): QueryRequestT =>
  QueryRequest.getRootAsQueryRequest(buffer(bytes)).unpack();
export const decodeQueryResponse = (bytes: Uint8Array): QueryResponseT =>
  QueryResponse.getRootAsQueryResponse(buffer(bytes)).unpack();
export const decodeQueryBatch = (bytes: Uint8Array): QueryBatchT =>
  QueryBatch.getRootAsQueryBatch(buffer(bytes)).unpack();
export const decodeQueryBatchResponse = (bytes: Uint8Array): QueryBatchResponseT =>
  QueryBatchResponse.getRootAsQueryBatchResponse(buffer(bytes)).unpack();

/** Builds an object-API value from a partial: `make(TaskEventT, {timestamp: 1n})`. */
export function make<T extends object>(type: new () => T, fields: Partial<T>): T {
  return Object.assign(new type(), fields);
}
