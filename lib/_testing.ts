// Settings that only tests change, to reach states that normal use reaches after hours.

/** What tests may set before creating objects in this process. */
export const testing: {
  /**
   * Where a new ring's head and tail start (mod 2^32) instead of 0: just below 2^32 or
   * 2^31, a test reaches the positions' wrap-around with a few messages.
   */
  ringStartPosition: number;
  /**
   * Attempts made before a blocking operation parks (its quick retries, spin and yields),
   * or undefined for the defaults. 0 makes a test's step-by-step schedule short.
   */
  spin: number | undefined;
} = { ringStartPosition: 0, spin: undefined };
