/** commander option helpers shared by the command files. */

/** For repeatable options (`-e A -e B`): accumulates every value. */
export const collect = (v: string, prev: string[]): string[] => [...prev, v];
