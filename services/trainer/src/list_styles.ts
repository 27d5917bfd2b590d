/** TrainerService.ListStyles: the styles of a museum version (default: the latest), in the order they were learned. */
import type { museum } from '@museum/proto';
import { checkVersion } from '@museum/rpc';
import type { Museum } from '@museum/museum';

export async function listStyles(req: museum.v1.ListStylesRequest, m: Museum): Promise<museum.v1.ListStylesResponse> {
  const requested = checkVersion(req.museumVersion);
  const version = requested ?? m.latestVersion();
  // NOT_FOUND (a MuseumError code) for a version the museum does not have
  const styles = m.listStyles(version);
  return { museumVersion: version, styles: styles.map((s) => ({ name: s.name, token: s.token, addedInVersion: s.version })) };
}
