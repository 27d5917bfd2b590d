import { assertLoopback, isLoopbackAddress } from '@museum/bench';

describe('loopback guard', () => {
  it('accepts loopback addresses only', () => {
    for (const a of ['127.0.0.1:50051', '127.3.2.1:1', 'localhost:50052', '[::1]:50053', 'dns:///localhost:50051', 'ipv4:127.0.0.1:9']) expect(isLoopbackAddress(a)).toBe(true);
    for (const a of ['10.0.0.1:50051', '192.168.1.2:80', '172.16.0.1:1', 'example.com:443', 'denoiser:50053', '[2001:db8::1]:1', '0.0.0.0:50051', '128.0.0.1:1']) expect(isLoopbackAddress(a)).toBe(false);
    expect(() => assertLoopback('10.1.2.3:50051')).toThrow(/not a loopback address/);
  });
});
