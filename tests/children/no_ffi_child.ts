// Run without --allow-ffi: prints the name and message of the error deno-ipc throws.
import { SharedMemory } from "../../mod.ts";

try {
  SharedMemory.create({ size: 16 });
  console.log("no error");
} catch (error) {
  console.log(`${(error as Error).name}: ${(error as Error).message}`);
}
