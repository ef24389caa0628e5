// Settings that only tests change, to reach states that normal use reaches after hours.

/** What tests may set before creating objects in this process. */
export const testing: {
  /**
   * Where a new ring's head and tail start (mod 2^32) instead of 0: just below 2^32 or
   * 2^31, a test reaches the positions' wrap-around with a few messages.
   */
  ringStartPosition: number;
} = { ringStartPosition: 0 };
