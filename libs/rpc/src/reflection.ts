/**
 * gRPC server reflection (grpc.reflection.v1 and v1alpha, via the official @grpc/reflection), so
 * that grpcurl / grpcui / Postman can list and call the services without local .proto files.
 *
 * The descriptors come from the repository's own .proto files, loaded at start-up with
 * @grpc/proto-loader, rather than from a descriptor set built by `buf build -o`: the .proto files
 * are already the single source of truth that buf lints and ts-proto generates from, so reflection
 * can never drift from them, and there is no second generated artefact (a binary FileDescriptorSet)
 * to commit and keep fresh. The cost is parsing ~10 small files once at start (a few ms).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { ReflectionService } from '@grpc/reflection';

/** `<repo>/proto` (this file sits in libs/rpc/src or libs/rpc/dist), or $MUSEUM_PROTO_DIR. */
export function protoRoot(env: NodeJS.ProcessEnv = process.env): string {
  return path.resolve(env.MUSEUM_PROTO_DIR || path.join(__dirname, '..', '..', '..', 'proto'));
}

/** Every .proto file under the root, relative to it (the import paths the files use). */
export function protoFiles(root: string = protoRoot()): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith('.proto')) out.push(path.relative(root, p).split(path.sep).join('/'));
    }
  };
  walk(root);
  return out.sort();
}

let cached: { root: string; def: protoLoader.PackageDefinition } | null = null;

/** The package definition of every Museum proto (cached per root). */
export function loadProtoDefinitions(root: string = protoRoot()): protoLoader.PackageDefinition {
  if (cached?.root === root) return cached.def;
  const def = protoLoader.loadSync(protoFiles(root), { includeDirs: [root], keepCase: true, longs: Number, enums: String, defaults: true, oneofs: true });
  cached = { root, def };
  return def;
}

/**
 * Add the reflection service to a server, exposing `services` (fully-qualified names; default all).
 * Returns false (and reflection is off) when the .proto files are not where they should be.
 */
export function addReflection(server: grpc.Server, services?: string[], log: (msg: string) => void = () => {}): boolean {
  const root = protoRoot();
  if (!fs.existsSync(root)) {
    log(`reflection disabled: no .proto files at ${root} (set MUSEUM_PROTO_DIR)`);
    return false;
  }
  const def = loadProtoDefinitions(root);
  // @grpc/reflection bundles its own proto-loader minor version; the definition objects are the same shape.
  const reflection = new ReflectionService(def as unknown as ConstructorParameters<typeof ReflectionService>[0], services ? { services } : undefined);
  reflection.addToServer(server);
  return true;
}
