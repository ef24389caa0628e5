// The payload of record `index` of writer `writer` in file log tests: recognisable from
// its bytes alone, so that a test can tell which record it is and that it is whole.
//   [u16 writer | u32 index | u16 size | bytes (writer * 31 + index * 7 + k) & 0xff]

/** Record `index` of `writer`, `size` bytes long (at least 8). */
export function payload(writer: number, index: number, size: number): Uint8Array {
  const bytes = new Uint8Array(Math.max(8, size));
  const view = new DataView(bytes.buffer);
  view.setUint16(0, writer, true);
  view.setUint32(2, index, true);
  view.setUint16(6, bytes.length, true);
  for (let k = 8; k < bytes.length; k++) bytes[k] = (writer * 31 + index * 7 + k) & 0xff;
  return bytes;
}

/** Which record a payload is: throws if it is not exactly what `payload` made. */
export function identify(bytes: Uint8Array): { writer: number; index: number } {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const writer = view.getUint16(0, true);
  const index = view.getUint32(2, true);
  const expected = payload(writer, index, view.getUint16(6, true));
  if (expected.length !== bytes.length || expected.some((byte, k) => byte !== bytes[k])) {
    throw new Error(`payload of writer ${writer} record ${index} is not whole`);
  }
  return { writer, index };
}
