// Child for tests/ffi_test.ts: its first libc call fails (mkdir of an existing
// directory, given as the argument) and the first errno read must say EEXIST.
import { libc } from "../../ffi/libc.ts";
import { lastErrno } from "../../ffi/errno.ts";
import { C } from "../../ffi/constants.ts";

const path = new TextEncoder().encode(`${Deno.args[0]}\0`);
const result = libc().symbols.mkdirat(C.AT_FDCWD, path, 0o700);
console.log(`${result} ${lastErrno()}`);
