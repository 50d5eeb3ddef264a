import { describe, expect, test } from "bun:test";
import { EXPORT_PREFIX, mountCommand, mountOptions, newExportPath, type NfsMountSpec } from "./mount.ts";

const spec: NfsMountSpec = {
  host: "127.0.0.1",
  port: 40123,
  exportPath: "/pgfiles-0123456789abcdef0123456789abcdef",
  mountpoint: "/Users/agent/work",
  metadataTtlMs: 30_000,
  readOnly: false,
  transferBytes: 1048576,
};

describe("the system's NFS mount", () => {
  test("macOS: mount_nfs with v3 over TCP on our one port, soft with a bounded timeout, a dead timeout, local locks, the metadata TTL", () => {
    expect(mountCommand("darwin", spec)).toEqual([
      "/sbin/mount_nfs",
      "-o",
      "vers=3,tcp,port=40123,mountport=40123,soft,intr,timeo=30,retrans=4,actimeo=30,rsize=1048576,wsize=1048576,nosuid,nodev,locallocks,deadtimeout=30,noresvport,nonegnamecache,nfc,nobrowse",
      "127.0.0.1:/pgfiles-0123456789abcdef0123456789abcdef",
      "/Users/agent/work",
    ]);
  });

  test("Linux: mount -t nfs with the same transport, no lockd, positive lookups cached only", () => {
    expect(mountCommand("linux", { ...spec, mountpoint: "/work", readOnly: true, metadataTtlMs: 250 })).toEqual([
      "mount",
      "-t",
      "nfs",
      "-o",
      "vers=3,tcp,port=40123,mountport=40123,soft,intr,timeo=30,retrans=4,actimeo=1,rsize=1048576,wsize=1048576,nosuid,nodev,ro,nolock,local_lock=all,mountproto=tcp,lookupcache=positive",
      "127.0.0.1:/pgfiles-0123456789abcdef0123456789abcdef",
      "/work",
    ]);
  });

  test("the attribute cache follows PGFILES_CACHE_METADATA_TTL in whole seconds, at least one", () => {
    const actimeo = (ms: number) => mountOptions("darwin", { ...spec, metadataTtlMs: ms }).find((o) => o.startsWith("actimeo="));
    expect(actimeo(0)).toBe("actimeo=1");
    expect(actimeo(1500)).toBe("actimeo=2");
    expect(actimeo(300_000)).toBe("actimeo=300");
  });

  test("export paths are 128 random bits under the pgfiles prefix, never the same twice", () => {
    const a = newExportPath();
    const b = newExportPath();
    expect(a).toMatch(new RegExp(`^${EXPORT_PREFIX}[0-9a-f]{32}$`));
    expect(a).not.toBe(b);
  });
});
