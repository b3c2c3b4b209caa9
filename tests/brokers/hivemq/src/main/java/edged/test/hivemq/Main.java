package edged.test.hivemq;

import com.hivemq.embedded.EmbeddedHiveMQ;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.CountDownLatch;

/**
 * Runs HiveMQ Community Edition until SIGTERM or SIGINT.
 *
 * <p>Arguments: the configuration folder (its config.xml names the listener, the MQTT limits and
 * the persistence mode; an optional logback.xml the logging), the data folder (where a file
 * persistence keeps sessions, queued and retained messages across a restart) and the extensions
 * folder (empty here). tests/helpers/otherbrokers.py writes them and starts this.
 */
public final class Main {
    private Main() {}

    public static void main(String[] args) throws Exception {
        if (args.length != 3) {
            System.err.println("usage: hivemq-broker CONFIG_FOLDER DATA_FOLDER EXTENSIONS_FOLDER");
            System.exit(2);
        }
        Path config = Path.of(args[0]);
        Path data = Path.of(args[1]);
        Path extensions = Path.of(args[2]);
        Files.createDirectories(data);
        Files.createDirectories(extensions);
        EmbeddedHiveMQ hivemq =
                EmbeddedHiveMQ.builder()
                        .withConfigurationFolder(config)
                        .withDataFolder(data)
                        .withExtensionsFolder(extensions)
                        .build();
        CountDownLatch stopped = new CountDownLatch(1);
        Runtime.getRuntime()
                .addShutdownHook(
                        new Thread(
                                () -> {
                                    try {
                                        hivemq.stop().join();
                                        hivemq.close();
                                    } catch (Exception e) {
                                        e.printStackTrace();
                                    } finally {
                                        stopped.countDown();
                                    }
                                }));
        try {
            hivemq.start().join();
        } catch (Exception e) {
            e.printStackTrace();
            System.exit(1);
        }
        System.out.println("hivemq-broker: started");
        System.out.flush();
        stopped.await();
    }
}
