/** @museum/trainer: the museum.v1.TrainerService server (style-learning jobs over the museum store). */
export * from './service';
export * from './jobs';
export * from './journal';
export * from './learner';
