// Named steps as they happen, for a live progress line (the reporter subscribes).
import { EventEmitter } from 'node:events';

export interface StepProgress {
  test: string;
  step: string;
  at: number;
}

export const progress = new EventEmitter();
