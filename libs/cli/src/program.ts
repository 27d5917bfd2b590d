import { Command } from 'commander';
import { registerDoctor } from './commands/doctor';
import { registerPretrain } from './commands/pretrain';
import { registerGenerate } from './commands/generate';
import { registerBench } from './commands/bench';
import { registerServe } from './commands/serve';
import { registerStart } from './commands/start';
import { museumVersion } from './paths';

/** The `museum` command: one file per subcommand in commands/, each exporting a register function. */
export function buildProgram(): Command {
  const program = new Command('museum')
    .description('Museum: continual style learning for text-to-image diffusion (MuseumMaker)')
    .version(museumVersion(), '-V, --version')
    .showHelpAfterError('(run `museum --help` for the list of commands)')
    .showSuggestionAfterError(true);
  registerDoctor(program);
  registerPretrain(program);
  registerGenerate(program);
  registerBench(program);
  registerStart(program);
  registerServe(program);
  return program;
}
