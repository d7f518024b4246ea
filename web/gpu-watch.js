// Watches the WebGPU devices the compute engine creates (inside the worker, before the wasm
// module starts), so that a lost device is noticed at once, even while an attack waits on the GPU,
// and the page can move to the CPU without a reload (web/recover.js). GPUAdapter.requestDevice is
// wrapped: wgpu calls it through the prototype, so every device the engine gets passes here.
// The devices are also kept on self.advlabGpuDevices, a debug handle (the tests destroy one to
// simulate a lost GPU).

export function watchGpuDevices(onLost) {
  const proto = self.GPUAdapter?.prototype;
  if (!proto || typeof proto.requestDevice !== 'function' || proto.requestDevice.__advlabWatched) return;
  const original = proto.requestDevice;
  self.advlabGpuDevices = [];
  const wrapped = async function requestDevice(...args) {
    const device = await original.apply(this, args);
    self.advlabGpuDevices.push(device);
    device.lost?.then((info) => {
      // 'destroyed' is also the reason when the engine frees a device it no longer needs (the
      // probe's loser); only a device still in the list counts.
      const i = self.advlabGpuDevices.indexOf(device);
      if (i < 0) return;
      self.advlabGpuDevices.splice(i, 1);
      onLost(`${info?.reason ?? 'unknown'}${info?.message ? `: ${info.message}` : ''}`);
    });
    return device;
  };
  wrapped.__advlabWatched = true;
  proto.requestDevice = wrapped;
}
