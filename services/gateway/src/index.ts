/** @museum/gateway: the museum.v1.GatewayService server (prompt -> image over the stage services). */
export * from './service';
export * from './stages';
export { generateOne, planGeneration, type GenerationPlan, type GenerateEvent } from './pipeline';
