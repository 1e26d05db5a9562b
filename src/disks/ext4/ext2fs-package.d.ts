/** The part of the `ext2fs` package (WASM libext2fs, no bundled types) that reader.ts and editor.ts use. */
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
    /** flags as for Node's fs ('w', 'wx', ...); mode is used when the file is created */
    open(path: string, flags: string, mode?: number): Promise<Ext2FileHandle>;
    mkdir(path: string, mode?: number): Promise<void>;
    symlink(target: string, path: string): Promise<void>;
    link(existingPath: string, newPath: string): Promise<void>;
    unlink(path: string): Promise<void>;
    rmdir(path: string): Promise<void>;
    rename(from: string, to: string): Promise<void>;
    lchmod(path: string, mode: number): Promise<void>;
    lchown(path: string, uid: number, gid: number): Promise<void>;
    /** positional write on an fd from open(); `offset` is ignored by the binding: pass 0 */
    write(fd: number, buffer: Buffer, offset: number, length: number, position: number): Promise<{ bytesWritten: number }>;
    /** FileHandle.close() does not return its promise: close by fd */
    close(fd: number): Promise<void>;
  }
  export interface Ext2FileHandle {
    readonly fd: number;
  }
  export interface Ext2Fs {
    promises: Ext2Promises;
    fsPointer: number;
    diskId: number;
  }
  export function mount(disk: Ext2Disk, offset?: number): Promise<Ext2Fs>;
  export function umount(fs: Ext2Fs): Promise<void>;
}
