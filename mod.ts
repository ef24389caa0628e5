/**
 * deno-ipc: interprocess communication for Deno, bound straight to libc through FFI.
 *
 * Needs `--allow-ffi` (which grants full access to the process). Linux x86_64 (glibc).
 *
 * @example Shared memory and a semaphore
 * ```ts
 * import { NamedSemaphore, SharedMemory } from "@deno-ipc/ipc";
 * import assert from "node:assert/strict";
 *
 * using shm = SharedMemory.create({ size: 4096 });
 * using ready = NamedSemaphore.create();
 * try {
 *   shm.bytes[0] = 42;
 *   ready.post();
 *   await ready.wait({ timeout: 1000 });
 *   assert.equal(shm.bytes[0], 42);
 * } finally {
 *   shm.unlink();
 *   ready.unlink();
 * }
 * ```
 *
 * @module
 */
export {
  AlreadyExistsError,
  BrokenPipeError,
  ClosedError,
  ConnectionRefusedError,
  CorruptedError,
  ErrnoError,
  type ErrnoErrorOptions,
  InterruptedError,
  NotAFifoError,
  NotASocketError,
  NotFoundError,
  PermissionDeniedError,
  QueueRemovedError,
  StreamEndedError,
  TimedOutError,
  WouldBlockError,
} from "./ffi/errno.ts";
export { UnsupportedPlatformError } from "./ffi/libc.ts";
export type { OwnershipOptions } from "./lib/_owner.ts";
export {
  SharedMemory,
  type SharedMemoryCreateOptions,
  type SharedMemoryOpenOptions,
  type SharedMemoryOpenOrCreateOptions,
  type TypedArrayConstructor,
} from "./lib/shared_memory.ts";
export {
  Mutex,
  type MutexCreateOptions,
  type MutexGuard,
  NamedSemaphore,
  type NamedSemaphoreCreateOptions,
  type NamedSemaphoreOpenOptions,
  type NamedSemaphoreOpenOrCreateOptions,
  type Semaphore,
  UnnamedSemaphore,
  type UnnamedSemaphoreAttachOptions,
  type UnnamedSemaphoreInitOptions,
  type WaitOptions,
} from "./lib/semaphore.ts";
export { Channel } from "./lib/channel.ts";
export {
  MessageRing,
  type MessageRingCreateOptions,
  type MessageRingOpenOptions,
} from "./lib/message_ring.ts";
export {
  BoundedBuffer,
  type BoundedBufferCreateOptions,
  type BoundedBufferOpenOptions,
} from "./lib/bounded_buffer.ts";
export { SemaphoreBoundedBuffer } from "./lib/semaphore_bounded_buffer.ts";
export {
  type DefaultAction,
  defaultAction,
  Doorbell,
  type DoorbellCreateOptions,
  type DoorbellOpenOptions,
  isProcessAlive,
  onSignal,
  processGroupOf,
  type ProcessStatus,
  processStatus,
  raiseSignal,
  sendSignal,
  sendSignalToGroup,
  type SignalName,
  signalNumber,
  startProcessGroup,
  UnlistenableSignalError,
  waitForSignal,
} from "./lib/signal.ts";
export {
  createPipe,
  inheritedPipeEnds,
  PIPE_BUF,
  PIPE_FDS_ENV,
  type PipedChild,
  PipeEnd,
  PipeReader,
  PipeWriter,
  spawnWithPipePair,
  spawnWithPipes,
  type SpawnWithPipesOptions,
} from "./lib/pipe.ts";
export {
  Fifo,
  type FifoCreateOptions,
  type FifoOpenOptions,
  type FifoUnlinkOptions,
} from "./lib/fifo.ts";
export {
  FileLog,
  type FileLogOpenOptions,
  FileLogReader,
  type FileLogReaderOptions,
  type LogRecord,
  MAX_RECORD_SIZE_LIMIT,
  type SyncPolicy,
} from "./lib/file_log.ts";
export {
  FileLock,
  type FileLockGuard,
  type FileLockOpenOptions,
  type FileLockOptions,
  type LockConflict,
  type LockRange,
} from "./lib/file_lock.ts";
export {
  MappedFile,
  type MappedFileCreateOptions,
  type MappedFileOpenOptions,
} from "./lib/mapped_file.ts";
export {
  MessageQueue,
  type MessageQueueCreateOptions,
  type MessageQueueKeyOptions,
  type MessageQueueOpenOptions,
  type MessageQueueStats,
  QueueMessage,
  type ReceiveOptions,
} from "./lib/message_queue.ts";
export {
  PosixMessageQueue,
  type PosixMessageQueueAttributes,
  type PosixMessageQueueCreateOptions,
  type PosixMessageQueueOpenOptions,
  type PosixSendOptions,
} from "./lib/posix_message_queue.ts";
export {
  Mailbox,
  type MailboxCapacity,
  type MailboxCreateOptions,
  MailboxMessage,
  type MailboxOpenOptions,
  type MailboxStats,
  type MessageSender,
} from "./lib/mailbox.ts";
export { DirectEndpoint, type DirectEndpointOptions } from "./lib/direct.ts";
export {
  type Datagram,
  type DatagramAddress,
  type DatagramBindOptions,
  DatagramSocket,
  DatagramTooLargeError,
  MAX_UDP_PAYLOAD,
  type MulticastOptions,
} from "./lib/datagram.ts";
export {
  FramedConnection,
  type FramedConnectOptions,
  FramedServer,
  type FramedServerOptions,
  FrameTooLargeError,
  type FramingOptions,
  type PeerCredentials,
  type SocketAddress,
  TruncatedFrameError,
} from "./lib/socket.ts";
export {
  type AlpcRpcAddress,
  BadArgumentsError,
  type CallContext,
  ConnectionLostError,
  type LookupOptions,
  lookupService,
  marshal,
  type MatchmakerProcedures,
  type Procedures,
  RemoteError,
  type RpcAddress,
  RpcClient,
  type RpcClientOptions,
  RpcServer,
  type RpcServerOptions,
  ServerBusyError,
  ServiceNameTakenError,
  ServiceNotFoundError,
  type Stub,
  UnknownProcedureError,
  unmarshal,
} from "./lib/rpc.ts";
export { Matchmaker } from "./lib/matchmaker.ts";
export {
  cleanupDead,
  type CleanupEntry,
  type CleanupOptions,
  type CleanupResult,
  inspectObject,
  type IpcObject,
  listObjects,
  type ListOptions,
  type ObjectState,
  type ProcessState,
} from "./lib/introspect.ts";
export {
  type AllocateOptions,
  Bootstrap,
  type BootstrapOptions,
  DeadNameError,
  DEFAULT_QUEUE_LIMIT,
  type InheritedToken,
  MACH_NOTIFY,
  type MachMessage,
  type MachNotification,
  type MachReceiveOptions,
  type MachSender,
  MAX_INLINE_BODY,
  MAX_OUT_OF_LINE,
  MAX_QUEUE_LIMIT,
  MAX_RIGHTS,
  MessageTooLargeError,
  NotifyInProgressError,
  type OutgoingMessage,
  OutOfLineMemory,
  PortSet,
  type PortSetMessage,
  QueueFullError,
  ReceivedMemory,
  ReceiveRight,
  type RightTransfer,
  SendOnceRight,
  type SendOptions,
  type SendResult,
  SendRight,
} from "./lib/mach_port.ts";
export {
  type AlpcAcceptOptions,
  AlpcClient,
  AlpcConnection,
  AlpcConnectionRefusedError,
  AlpcConnectionRequest,
  type AlpcConnectOptions,
  type AlpcHandler,
  type AlpcLimits,
  AlpcMessage,
  type AlpcPath,
  AlpcRemoteError,
  type AlpcReplyData,
  type AlpcSendOptions,
  AlpcServer,
  type AlpcServerEvent,
  type AlpcServerOptions,
  type CloseReason,
  MAX_BACKLOG,
  MAX_CALLBACK_DEPTH,
  MAX_CONNECTION_PAYLOAD,
  MAX_INLINE_LIMIT,
  PortClosedError,
  SectionFullError,
  validatePortName,
} from "./lib/alpc.ts";
