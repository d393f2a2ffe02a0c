export async function attachVmLab(_: unknown): Promise<never> { throw new Error("vm lab not built yet"); }
