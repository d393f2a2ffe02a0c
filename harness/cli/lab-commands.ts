import type { Command } from '@commander-js/extra-typings';

export function registerLabCommands(_program: Command): void {
  // filled in by the VM lab
}
