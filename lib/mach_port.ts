/**
 * Mach message passing on Linux: ports with rights the kernel enforces, bounded queues
 * with the textbook's four full-queue options, send-once reply rights and notifications.
 *
 * A port is an AF_UNIX SOCK_SEQPACKET socket pair. Its {@link ReceiveRight} holds the
 * receiving end, which only its holder has; a {@link SendRight} or {@link SendOnceRight}
 * holds a descriptor of the sending end. Rights are descriptors, so a process can use
 * only the rights it was given: names, pids and paths give nothing (the socket has no
 * path, and /proc/PID/fd refuses to open a socket). Rights travel inside messages as
 * SCM_RIGHTS, and every received message carries the sender's pid, uid and gid as the
 * kernel recorded them (SCM_CREDENTIALS), like Mach's audit trailer (the kernel lets
 * a sender claim other ids only with CAP_SYS_ADMIN or CAP_SETUID, as root has).
 *
 * The queue limit counts messages (a socket buffer counts bytes): a table shared by the
 * port's rights has one slot per queued message, claimed under a lock the kernel drops
 * if the sender dies mid-send, so a dead sender never shrinks the queue for good.
 *
 * Where real kernels differ from the textbook this module follows the textbook:
 * - The cached send (`notify` in {@link SendOptions}) is Mach 3's MACH_SEND_NOTIFY.
 *   XNU dropped it: there MACH_SEND_NOTIFY only arms a send-possible notification and
 *   the send still blocks or times out. The textbook allows one cached message per
 *   sending thread, Mach 3 one per task and send right; here one per process and port,
 *   and, as in the textbook, msg-accepted is sent once the queue has room for the cached
 *   message (Mach 3 sends it when the message is received).
 * - Notifications are queued on a receive right of the requesting process (no-senders
 *   and send-once on the port itself, as in Mach; dead-name on the port you name).
 *   They carry `sender: undefined`; msg-accepted comes from the receiving process, so
 *   its `sender` is that process.
 * - Names: Mach names rights per task with user-reference counts; here each handle is
 *   one reference (`copy()` adds one, `close()` drops one).
 * - Out-of-line memory ({@link OutOfLineMemory}) is a sealed memfd the receiver maps
 *   copy-on-write: no byte is copied by the send. Sending an unsealed region moves it
 *   (Mach's `deallocate: true`: the sender's shared mapping must go before sealing); a
 *   region sealed first with `seal()` is sent as a copy, any number of times, and the
 *   sender keeps a copy-on-write view (Mach's virtual copy).
 * - Moving a receive right needs the port to have nothing pending in the moving
 *   process (no messages drained there, no send-once rights made there outstanding, no
 *   no-senders request).
 * - Bootstrap ({@link Bootstrap}): a dead service's name is dropped; launchd would take
 *   the receive right back so clients' rights survive a restart, which Linux cannot do
 *   (a dead process's descriptors cannot be taken back): clients look the name up again.
 * - Port sets ({@link PortSet}) hold no rights here: members stay owned by the caller
 *   and may still be received on directly (Mach forbids that while in a set).
 *
 * Limits of the Linux mapping: a process with ptrace rights over a holder (root, or the
 * same user where Yama allows it) can copy its descriptors with pidfd_getfd(2), as a
 * debugger could read a Mach task's memory; since all send rights of a port share
 * one socket, a send-right holder could shut that socket down for the others; and since
 * every right maps the port's queue table (sealed against resizing, not against
 * writes), a send-right holder could fill the queue or make the port look dead to the
 * other senders.
 *
 * @module
 */
export {
  DeadNameError,
  MACH_NOTIFY,
  type MachNotification,
  MessageTooLargeError,
  NotifyInProgressError,
  QueueFullError,
} from "./_mach_errors.ts";
export { DEFAULT_QUEUE_LIMIT, MAX_QUEUE_LIMIT } from "./_mach_queue.ts";
export { MAX_INLINE_BODY, MAX_RIGHTS } from "./_mach_wire.ts";
export {
  type AllocateOptions,
  type InheritedToken,
  type MachMessage,
  type MachReceiveOptions,
  type MachSender,
  type OutgoingMessage,
  type RightTransfer,
  SendOnceRight,
  type SendOptions,
  type SendResult,
  SendRight,
} from "./_mach_send.ts";
export { ReceiveRight } from "./_mach_receive.ts";
export { PortSet, type PortSetMessage } from "./_mach_port_set.ts";
export { MAX_OUT_OF_LINE, OutOfLineMemory, ReceivedMemory } from "./_mach_memory.ts";
export { Bootstrap, type BootstrapOptions } from "./_mach_bootstrap.ts";
