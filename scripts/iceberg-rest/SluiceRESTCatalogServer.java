/*
 * Apache Iceberg's REST catalog test server (org.apache.iceberg.rest.RESTCatalogServer, from
 * iceberg-open-api's test fixtures, the server of the apache/iceberg-rest-fixture image),
 * bound to ONE host, 127.0.0.1 unless told otherwise: upstream's server binds every
 * interface and has no setting for it. scripts/tools compiles this file against the jars of
 * `scripts/tools iceberg-rest` into that folder (sluice-iceberg-rest.jar).
 *
 * Everything but the listening socket is upstream's: the backend catalog is built by
 * RESTCatalogServer's own (private) initializeBackendCatalog, so its CATALOG_* environment
 * variables and its defaults apply, and requests go through the same RESTServerCatalogAdapter
 * and RESTCatalogServlet. The flags below become catalog properties, which win over the
 * environment:
 *
 *   --warehouse DIR   warehouse=file:///abs/DIR, uri=jdbc:sqlite:/abs/DIR/catalog.db
 *                     (a JdbcCatalog on sqlite, metadata through HadoopFileIO on local files)
 *   --port N          rest.port (upstream's default 8181)
 *   --host H          rest.host (ours; default 127.0.0.1)
 *
 * It lives in upstream's package so that it may use the package-private adapter.
 * Written against Iceberg 1.10 (Jetty 11); 1.11 moved to Jetty 12 (ee10 servlet packages).
 */
package org.apache.iceberg.rest;

import java.io.File;
import java.lang.reflect.Method;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.apache.iceberg.util.PropertyUtil;
import org.eclipse.jetty.server.Server;
import org.eclipse.jetty.server.ServerConnector;
import org.eclipse.jetty.server.handler.gzip.GzipHandler;
import org.eclipse.jetty.servlet.ServletContextHandler;
import org.eclipse.jetty.servlet.ServletHolder;

public final class SluiceRESTCatalogServer {
  static final String REST_HOST = "rest.host";
  static final String REST_HOST_DEFAULT = "127.0.0.1";

  private SluiceRESTCatalogServer() {}

  private static void usage(String why) {
    System.err.println(
        "error: "
            + why
            + "\nusage: java -cp 'LIBS/*' "
            + SluiceRESTCatalogServer.class.getName()
            + " --warehouse DIR [--port N] [--host H]");
    System.exit(2);
  }

  public static void main(String[] args) throws Exception {
    Map<String, String> config = new HashMap<>();
    for (int i = 0; i < args.length; i += 2) {
      if (!List.of("--warehouse", "--port", "--host").contains(args[i])) {
        usage("unknown argument " + args[i]);
      } else if (i + 1 >= args.length) {
        usage(args[i] + " needs a value");
      }
      String value = args[i + 1];
      switch (args[i]) {
        case "--warehouse":
          File dir = new File(value).getAbsoluteFile();
          if (!dir.isDirectory() && !dir.mkdirs()) {
            usage("cannot create the warehouse directory " + dir);
          }
          String uri = dir.toPath().toUri().toString(); // file:///abs/dir/
          config.put("warehouse", uri.endsWith("/") ? uri.substring(0, uri.length() - 1) : uri);
          config.put("uri", "jdbc:sqlite:" + new File(dir, "catalog.db").getPath());
          config.put("catalog-impl", "org.apache.iceberg.jdbc.JdbcCatalog");
          config.put("io-impl", "org.apache.iceberg.hadoop.HadoopFileIO");
          // As the apache/iceberg-rest-fixture image: a table needs its namespace.
          config.put("jdbc.strict-mode", "true");
          break;
        case "--port":
          config.put(RESTCatalogServer.REST_PORT, value);
          break;
        case "--host":
          config.put(REST_HOST, value);
          break;
        default:
          throw new AssertionError(args[i]);
      }
    }

    // Upstream's catalog set-up: environment, defaults, then our flags on top.
    RESTCatalogServer upstream = new RESTCatalogServer(config);
    Method init = RESTCatalogServer.class.getDeclaredMethod("initializeBackendCatalog");
    init.setAccessible(true);
    RESTCatalogServer.CatalogContext context =
        (RESTCatalogServer.CatalogContext) init.invoke(upstream);

    // Upstream's HTTP set-up (RESTCatalogServer.start), on one host.
    ServletContextHandler handler = new ServletContextHandler(ServletContextHandler.NO_SESSIONS);
    handler.addServlet(
        new ServletHolder(new RESTCatalogServlet(new RESTServerCatalogAdapter(context))), "/*");
    handler.insertHandler(new GzipHandler());

    Server server = new Server();
    ServerConnector connector = new ServerConnector(server);
    connector.setHost(
        PropertyUtil.propertyAsString(context.configuration(), REST_HOST, REST_HOST_DEFAULT));
    connector.setPort(
        PropertyUtil.propertyAsInt(
            context.configuration(),
            RESTCatalogServer.REST_PORT,
            RESTCatalogServer.REST_PORT_DEFAULT));
    server.addConnector(connector);
    server.setHandler(handler);
    server.start();
    System.err.println(
        "iceberg REST catalog listening on http://"
            + connector.getHost()
            + ":"
            + connector.getLocalPort()
            + " (warehouse "
            + context.configuration().get("warehouse")
            + ")");
    server.join();
  }
}
