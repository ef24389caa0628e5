// Named points inside protocol operations, for tests: a test installs a hook that can
// pause a participant there (to interleave steps of several processes) or kill it (to
// crash inside a critical step). Without a hook a step costs one comparison.

/** Called at each named step while installed. */
export type StepHook = (step: string) => void;

let hook: StepHook | undefined;

/**
 * Whether a hook is installed. Hot paths test it before calling {@link step}: a load
 * costs less than a call the optimizer may not inline.
 */
export let stepping = false;

/** Installs (or, with undefined, removes) the hook called at every step. */
export function setStepHook(next: StepHook | undefined): void {
  hook = next;
  stepping = next !== undefined;
}

/** Marks a named step of a protocol operation. */
export function step(name: string): void {
  if (hook !== undefined) hook(name);
}
