/**
 * `museum serve --service NAME --port P`: one service in this process, for deployments that scale
 * the stages apart. Events come from NATS (NATS_URL); without it the text encoder and denoiser
 * poll the museum store for new versions instead.
 */
import type { Command } from 'commander';
import { InvalidArgumentError } from 'commander';
import { initTracingFromEnv } from '@museum/rpc';
import { SERVICE_NAMES, addCommonOptions, buildService, openWiring, stopOnSignals, type CommonOpts, type ServiceName } from './start';

export interface ServeOpts extends CommonOpts {
  service: string;
  port: string;
  textEncoder?: string;
  denoiser?: string;
  vaeDecoder?: string;
}

/** Start the service; resolves to its address and stop function once it is bound. */
export async function serveOne(o: ServeOpts, log: (msg: string) => void, env: NodeJS.ProcessEnv = process.env) {
  if (!(SERVICE_NAMES as readonly string[]).includes(o.service)) throw new InvalidArgumentError(`--service must be one of ${SERVICE_NAMES.join(', ')}`);
  const name = o.service as ServiceName;
  const port = Number(o.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new InvalidArgumentError('--port must be a port number (0: chosen by the OS)');
  let stages: { textEncoder: string; denoiser: string; vaeDecoder: string } | undefined;
  if (name === 'gateway') {
    const te = o.textEncoder ?? env.MUSEUM_TEXT_ENCODER_ADDR;
    const dn = o.denoiser ?? env.MUSEUM_DENOISER_ADDR;
    const vd = o.vaeDecoder ?? env.MUSEUM_VAE_DECODER_ADDR;
    if (!te || !dn || !vd) throw new InvalidArgumentError('the gateway needs --text-encoder, --denoiser and --vae-decoder addresses (or MUSEUM_TEXT_ENCODER_ADDR, MUSEUM_DENOISER_ADDR, MUSEUM_VAE_DECODER_ADDR)');
    stages = { textEncoder: te, denoiser: dn, vaeDecoder: vd };
  }
  const w = await openWiring(o, log, env, name !== 'gateway');
  const svc = buildService(name, port, w, stages);
  // OTLP traces and metrics when OTEL_EXPORTER_OTLP_ENDPOINT is set
  const telemetry = initTracingFromEnv({ serviceName: `museum-${name}`, env });
  log(telemetry.description);
  let bound: number;
  try {
    bound = await svc.start();
  } catch (err) {
    await w.bus.close();
    await telemetry.shutdown();
    throw err;
  }
  const address = w.host.includes(':') ? `[${w.host}]:${bound}` : `${w.host}:${bound}`;
  return {
    service: svc,
    address,
    stop: async () => {
      await svc.stop();
      await w.bus.close();
      await telemetry.shutdown();
    },
  };
}

export function registerServe(program: Command): void {
  addCommonOptions(
    program
      .command('serve')
      .description('run one service (gateway, text-encoder, denoiser, vae-decoder or trainer)')
      .requiredOption('--service <name>', SERVICE_NAMES.join(' | '))
      .option('--port <n>', 'port to bind (0: chosen by the OS)', '0')
      .option('--text-encoder <addr>', 'gateway: address of the text-encoder service')
      .option('--denoiser <addr>', 'gateway: address of the denoiser service')
      .option('--vae-decoder <addr>', 'gateway: address of the VAE-decoder service'),
  ).action(async (o: ServeOpts) => {
    const log = (m: string) => process.stderr.write(`museum: ${m}\n`);
    const s = await serveOne(o, log);
    stopOnSignals(s.stop, log);
    process.stdout.write(`  ${o.service}  ${s.address}\n`);
    try {
      await s.service.ready;
    } catch (err) {
      await s.stop().catch(() => {});
      throw err;
    }
    log(`${o.service} ready at ${s.address}`);
  });
}
