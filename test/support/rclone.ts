/**
 * Debian's rclone driven by environment variables only: an `s3` remote named `px` pointed at an endpoint (the
 * proxy), path-style, with the given key pair. No rclone.conf, no caller environment (an AWS_CA_BUNDLE would
 * make rclone's SDK refuse its transport).
 */
export function rcloneS3Env(endpoint: string, up: { accessKeyId: string; secretAccessKey: string; region: string }, home: string): Record<string, string> {
  return {
    PATH: '/usr/bin:/bin',
    HOME: home,
    RCLONE_CONFIG_PX_TYPE: 's3',
    RCLONE_CONFIG_PX_PROVIDER: 'Other',
    RCLONE_CONFIG_PX_ENDPOINT: endpoint,
    RCLONE_CONFIG_PX_ACCESS_KEY_ID: up.accessKeyId,
    RCLONE_CONFIG_PX_SECRET_ACCESS_KEY: up.secretAccessKey,
    RCLONE_CONFIG_PX_REGION: up.region,
    RCLONE_CONFIG_PX_FORCE_PATH_STYLE: 'true',
  };
}
