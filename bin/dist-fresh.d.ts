/** Whether dist/ is the build of src/ as it is (bin/dist-fresh.js). */
export function distIsFresh(root: string): boolean;
