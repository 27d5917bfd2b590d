import { Command } from 'commander';
import { registerDoctor } from './commands/doctor';
import { registerPretrain } from './commands/pretrain';
import { registerGenerate } from './commands/generate';
import { registerBench } from './commands/bench';
import { registerServe } from './commands/serve';
import { registerStart } from './commands/start';
import { registerLearn } from './commands/learn';
import { registerStyles } from './commands/styles';
import { registerGallery } from './commands/gallery';
import { registerWorld } from './commands/world';
import { museumVersion } from './paths';

/** The `museum` command: one file per subcommand in commands/, each exporting a register function. */
export function buildProgram(): Command {
  const program = new Command('museum')
    .description('Museum: continual style learning for text-to-image diffusion (MuseumMaker)')
    .version(museumVersion(), '-V, --version')
    .showHelpAfterError('(run `museum --help` for the list of commands)')
    .showSuggestionAfterError(true)
    // options after a subcommand are the subcommand's (so `styles --version 3` is not the program's --version)
    .enablePositionalOptions();
  registerDoctor(program);
  registerPretrain(program);
  registerGenerate(program);
  registerLearn(program);
  registerStyles(program);
  registerGallery(program);
  registerWorld(program);
  registerBench(program);
  registerStart(program);
  registerServe(program);
  return program;
}
