/** The part of the `ext2fs` package (WASM libext2fs, no bundled types) that reader.ts uses. */
declare module 'ext2fs' {
  export interface Ext2Disk {
    read(buffer: Buffer, bufferOffset: number, length: number, fileOffset: number): Promise<unknown>;
    write(buffer: Buffer, bufferOffset: number, length: number, fileOffset: number): Promise<unknown>;
    discard(offset: number, length: number): Promise<void>;
    flush(): Promise<void>;
  }
  export interface Ext2Stats {
    mode: number;
    nlink: number;
    uid: number;
    gid: number;
    ino: number;
    size: number;
    blocks: number;
    mtime: Date;
    isDirectory(): boolean;
    isFile(): boolean;
    isSymbolicLink(): boolean;
  }
  export interface Ext2Promises {
    readdir(path: string, options?: { encoding?: string }): Promise<(string | Buffer)[]>;
    lstat(path: string): Promise<Ext2Stats>;
    /** always a UTF-8-decoded string (the binding ignores options.encoding): unusable for binary files */
    readFile(path: string): Promise<string>;
    createReadStream(path: string): import('node:stream').Readable;
    readlink(path: string, options?: { encoding?: string }): Promise<string | Buffer>;
  }
  export interface Ext2Fs {
    promises: Ext2Promises;
    fsPointer: number;
    diskId: number;
  }
  export function mount(disk: Ext2Disk, offset?: number): Promise<Ext2Fs>;
  export function umount(fs: Ext2Fs): Promise<void>;
}
